from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from service.consume.store import Store
from service.errors import CredentialsError
from service.types import Credentials, OrderRow, TokenPair
from tests.consume_helpers import fetch_rows, migrated, seed_shop

pytestmark = pytest.mark.integration

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def row(sn: str, status: str, update_time: int | None, shop: str = "s1") -> OrderRow:
    return OrderRow(
        shop_id=shop,
        order_sn=sn,
        order_status=status,
        update_time=update_time,
        order_detail={"order_sn": sn, "order_status": status},
        event_id=f"e-{sn}-{status}",
        record_timestamp_ms=1,
    )


async def statuses(dsn: str) -> dict[str, str]:
    rows = await fetch_rows(dsn, "SELECT order_sn, order_status FROM shopee_orders_raw")
    return {r["order_sn"]: r["order_status"] for r in rows}


async def test_upsert_writes_one_row_per_order_and_newest_update_wins(database_url: str) -> None:
    dsn = await migrated(database_url)
    async with Store(dsn) as store:
        await store.upsert_orders([row("A", "READY_TO_SHIP", 10), row("B", "PROCESSED", 10)])
        await store.upsert_orders([row("A", "SHIPPED", 20)])
        await store.upsert_orders([row("A", "READY_TO_SHIP", 15)])  # older: ignored
        await store.upsert_orders([row("B", "CANCELLED", 10)])  # tie: later write wins
    assert await statuses(dsn) == {"A": "SHIPPED", "B": "CANCELLED"}
    detail = await fetch_rows(dsn, "SELECT order_detail, processed_at FROM shopee_orders_raw WHERE order_sn = 'A'")
    assert '"SHIPPED"' in detail[0]["order_detail"]
    assert detail[0]["processed_at"] is not None


async def test_upsert_accepts_the_same_order_twice_in_one_statement(database_url: str) -> None:
    dsn = await migrated(database_url)
    async with Store(dsn) as store:
        await store.upsert_orders([row("A", "SHIPPED", 20), row("A", "PROCESSED", 10), row("A", "COMPLETED", 20)])
    assert await statuses(dsn) == {"A": "COMPLETED"}


async def test_null_update_time_never_replaces_a_known_one(database_url: str) -> None:
    dsn = await migrated(database_url)
    async with Store(dsn) as store:
        await store.upsert_orders([row("A", "PROCESSED", None)])
        await store.upsert_orders([row("A", "SHIPPED", 5)])  # known replaces unknown
        await store.upsert_orders([row("A", "CANCELLED", None)])  # unknown does not replace known
    assert await statuses(dsn) == {"A": "SHIPPED"}


async def test_credentials_of_unknown_and_inactive_shops_are_errors(database_url: str) -> None:
    dsn = await migrated(database_url)
    await seed_shop(dsn, "off", is_active=False)
    async with Store(dsn) as store:
        with pytest.raises(CredentialsError) as unknown:
            await store.credentials("nope")
        with pytest.raises(CredentialsError) as inactive:
            await store.credentials("off")
    assert unknown.value.reason == "shop_unknown"
    assert inactive.value.reason == "shop_inactive"
    assert not unknown.value.retriable


async def test_concurrent_rotations_refresh_once_and_share_the_new_pair(database_url: str) -> None:
    dsn = await migrated(database_url)
    await seed_shop(dsn, "s1", access_token="old", refresh_token="r-old")
    calls: list[str] = []

    async def refresh(current: Credentials) -> TokenPair:
        calls.append(current.refresh_token)
        await asyncio.sleep(0.2)  # hold the row lock while the others queue on it
        return TokenPair("new", "r-new", NOW + dt.timedelta(hours=4), NOW + dt.timedelta(days=30))

    async with Store(dsn) as store:
        results = await asyncio.gather(
            *(
                store.rotate_tokens("s1", stale_access_token="old", refresh=refresh, now=NOW, margin_seconds=300)
                for _ in range(3)
            )
        )
    assert calls == ["r-old"]
    assert {r.access_token for r in results} == {"new"}
    stored = await fetch_rows(dsn, "SELECT access_token, refresh_token, token_refreshed_at FROM merchant_shopee_config")
    assert (stored[0]["access_token"], stored[0]["refresh_token"]) == ("new", "r-new")
    assert stored[0]["token_refreshed_at"] is not None


async def test_rotation_failure_keeps_the_old_pair(database_url: str) -> None:
    dsn = await migrated(database_url)
    await seed_shop(dsn, "s1", access_token="old", refresh_token="r-old")

    async def refresh(current: Credentials) -> TokenPair:
        raise CredentialsError("refresh token rejected", reason="refresh_token_rejected")

    async with Store(dsn) as store:
        with pytest.raises(CredentialsError):
            await store.rotate_tokens("s1", stale_access_token="old", refresh=refresh, now=NOW, margin_seconds=0)
        assert (await store.credentials("s1")).refresh_token == "r-old"


async def test_each_store_call_is_one_statement_with_no_reset_round_trip(database_url: str) -> None:
    dsn = await migrated(database_url)
    await seed_shop(dsn, "s1")
    queries: list[str] = []
    async with Store(dsn) as store:
        await store.credentials("s1")  # first use: asyncpg introspects the array types once
        await store.upsert_orders([row("A", "SHIPPED", 1)])
        async with store.pool.acquire() as conn:  # the pool's one connection: calls in turn all use it
            conn.add_query_logger(lambda record: queries.append(record.query))
        await store.credentials("s1")
        await store.upsert_orders([row("A", "SHIPPED", 2)])
    assert [q.split()[0] for q in queries] == ["SELECT", "INSERT"], queries


def test_unknown_expiry_is_valid_and_margin_counts_as_expired() -> None:
    creds = Credentials("s", "a", "r")
    assert not creds.needs_refresh(NOW, 300)
    soon = Credentials("s", "a", "r", access_token_expires_at=NOW + dt.timedelta(seconds=200))
    assert soon.needs_refresh(NOW, 300)
    assert not soon.needs_refresh(NOW, 100)
