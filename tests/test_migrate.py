from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import pytest

from service.migrate import apply_migrations, load_migrations, migrate
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

SEED = (
    "INSERT INTO merchant_shopee_config (merchant_id, shop_id, partner_id, access_token, refresh_token, is_active) "
    "VALUES ('6f1c0b7e-6a55-4c1e-9a43-6b1de2f0a001', '123456', 2001887, 'tok', 'ref', true)"
)
SEED_STRING_PARTNER = (
    "INSERT INTO merchant_shopee_config (merchant_id, shop_id, partner_id, access_token, refresh_token, is_active) "
    "VALUES ('6f1c0b7e-6a55-4c1e-9a43-6b1de2f0a002', '654321', '2001887', 'tok', 'ref', true)"
)
MONITORING = [
    "SELECT DATE_TRUNC('hour', processed_at), COUNT(*), COUNT(DISTINCT shop_id) FROM shopee_orders_raw "
    "WHERE processed_at >= NOW() - INTERVAL '24 hours' GROUP BY 1",
    "SELECT shop_id, COUNT(*), MAX(processed_at) FROM shopee_orders_raw "
    "WHERE processed_at >= NOW() - INTERVAL '1 hour' GROUP BY shop_id",
]


def test_migrations_are_numbered_and_ordered() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(set(versions))
    assert versions[0] == 1


async def test_migrate_creates_schema_the_seed_and_monitoring_queries_use(database_url: str) -> None:
    assert await migrate(database_url) == [m.name for m in load_migrations()]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(SEED)
        await conn.execute(SEED_STRING_PARTNER)
        row = await conn.fetchrow("SELECT * FROM merchant_shopee_config WHERE shop_id = '123456'")
        assert row is not None
        assert row["is_active"] is True
        assert row["access_token_expires_at"] is None
        await conn.execute(
            "INSERT INTO shopee_orders_raw (shop_id, order_sn, order_status, update_time, order_detail) "
            "VALUES ('123456', 'SN1', 'READY_TO_SHIP', 1, '{}')"
        )
        for query in MONITORING:
            rows = await conn.fetch(query)
            assert len(rows) == 1
    finally:
        await conn.close()


async def test_migrate_twice_applies_nothing_the_second_time(database_url: str) -> None:
    await migrate(database_url)
    assert await migrate(database_url) == []


async def test_concurrent_migrations_apply_each_file_once(database_url: str) -> None:
    results = await asyncio.gather(*(migrate(database_url) for _ in range(4)))
    applied = sorted(name for result in results for name in result)
    assert applied == sorted(m.name for m in load_migrations())
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(load_migrations())
    finally:
        await conn.close()


async def test_failed_migration_is_rolled_back_and_not_recorded(database_url: str) -> None:
    from service.migrate import Migration

    conn = await asyncpg.connect(database_url)
    try:
        broken = [Migration(1, "001_broken.sql", "CREATE TABLE half_done (id int); SELECT no_such_function();")]
        with pytest.raises(asyncpg.PostgresError):
            await apply_migrations(conn, broken)
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
        # the advisory lock was released: a normal migration proceeds
        assert await apply_migrations(conn) != []
    finally:
        await conn.close()


def test_migrate_command_exits_zero(database_url: str) -> None:
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "service", "migrate"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
