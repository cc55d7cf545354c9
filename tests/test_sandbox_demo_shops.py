"""`sandbox demo-shops` writes working credentials into merchant_shopee_config (Postgres)."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from subprocess import PIPE

import asyncpg
import pytest

from service.sandbox.demo_shops import computed_shops, insert_shops
from service.sandbox.tokens import initial_tokens, merchant_id_for

ROOT = Path(__file__).resolve().parent.parent
KEY = "demo-partner-key"
PARTNER = 2001887

pytestmark = pytest.mark.integration

TABLE_WITH_EXPIRY = """
CREATE TABLE merchant_shopee_config (
  merchant_id uuid NOT NULL,
  shop_id text NOT NULL UNIQUE,
  partner_id bigint NOT NULL,
  access_token text,
  refresh_token text,
  is_active boolean NOT NULL DEFAULT true,
  access_token_expires_at timestamptz
)"""

TABLE_MINIMAL = """
CREATE TABLE merchant_shopee_config (
  merchant_id uuid NOT NULL,
  shop_id text NOT NULL UNIQUE,
  partner_id text NOT NULL,
  access_token text,
  refresh_token text,
  is_active boolean NOT NULL DEFAULT true
)"""


async def create_table(database_url: str, ddl: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(ddl)
    finally:
        await conn.close()


async def rows(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT * FROM merchant_shopee_config ORDER BY shop_id")
    finally:
        await conn.close()


async def test_cli_inserts_deterministic_credentials(database_url: str) -> None:
    await create_table(database_url, TABLE_WITH_EXPIRY)
    cmd = [sys.executable, "-m", "service", "sandbox", "demo-shops", "--shops", "3", "--shop-id-base", "700000"]
    cmd += ["--partner-id", str(PARTNER), "--partner-key", KEY, "--database-url", database_url]
    before = time.time()
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stdout=PIPE, stderr=PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    found = await rows(database_url)
    assert [r["shop_id"] for r in found] == ["700000", "700001", "700002"]
    for row in found:
        access, refresh = initial_tokens(KEY, int(row["shop_id"]))
        assert (row["access_token"], row["refresh_token"]) == (access, refresh)
        assert row["merchant_id"] == merchant_id_for(int(row["shop_id"]))
        assert row["partner_id"] == PARTNER and row["is_active"] is True
        assert before + 14400 - 5 <= row["access_token_expires_at"].timestamp() <= time.time() + 14400 + 5


async def test_rerun_updates_instead_of_duplicating(database_url: str) -> None:
    await create_table(database_url, TABLE_WITH_EXPIRY)
    shops = computed_shops(PARTNER, KEY, [710000, 710001], time.time(), 14400)
    assert await insert_shops(database_url, shops) == 2
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE merchant_shopee_config SET access_token = 'stale', is_active = false")
    finally:
        await conn.close()
    assert await insert_shops(database_url, shops) == 2
    found = await rows(database_url)
    assert len(found) == 2
    assert all(r["access_token"] == initial_tokens(KEY, int(r["shop_id"]))[0] and r["is_active"] for r in found)


async def test_works_without_the_optional_expiry_column_and_with_text_partner_id(database_url: str) -> None:
    await create_table(database_url, TABLE_MINIMAL)
    merchant = str(uuid.uuid4())
    shops = [{**s, "merchant_id": merchant} for s in computed_shops(PARTNER, KEY, [720000], time.time(), 60)]
    assert await insert_shops(database_url, shops) == 1
    (row,) = await rows(database_url)
    assert row["partner_id"] == str(PARTNER) and str(row["merchant_id"]) == merchant


async def test_missing_table_columns_are_reported(database_url: str) -> None:
    await create_table(database_url, "CREATE TABLE merchant_shopee_config (shop_id text UNIQUE)")
    with pytest.raises(RuntimeError, match="lacks columns"):
        await insert_shops(database_url, computed_shops(PARTNER, KEY, [1], time.time(), 60))
