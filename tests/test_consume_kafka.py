"""The consumer end to end against the real Kafka broker, real Postgres and the Shopee sandbox
served over HTTP. Records are produced to Kafka directly (OrderRecord.encode(), key shop-{id})."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import orjson
import pytest

from service.settings import Settings
from tests.consume_helpers import (
    committed_offsets,
    dead_letters,
    fetch_rows,
    fresh_settings,
    order,
    produce,
    running_consumer,
    wait_for_rows,
)
from tests.sandbox_server import SandboxServer
from tests.waiting import until

pytestmark = pytest.mark.integration

Setup = Callable[..., Awaitable[Settings]]


@pytest.fixture
async def setup(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], database_url: str, sandbox: SandboxServer
) -> Setup:
    """`await setup(partitions=1, **settings)`: fresh topics, a migrated database, consumer settings."""

    async def make(partitions: int = 1, **overrides: object) -> Settings:
        return await fresh_settings(
            kafka_bootstrap, new_topic, database_url, sandbox, partitions=partitions, **overrides
        )

    return make


async def test_full_batch_is_one_call_with_fifty_orders_without_waiting_for_the_timeout(
    setup: Setup, sandbox: SandboxServer, database_url: str
) -> None:
    settings = await setup(batch_timeout_seconds=3600)  # rows at all: the size flushed the batch
    await sandbox.add_shop(database_url, "1001")
    records = [order("1001", f"SN{i:03d}") for i in range(50)]
    await produce(settings.kafka_bootstrap_servers, settings.kafka_topic_marketplace_orders, records)
    async with running_consumer(settings):
        rows = await wait_for_rows(database_url, 50, within=60)
        calls = sandbox.order_calls("1001")
        assert len(calls) == 1
        assert sorted(calls[0].order_sns) == sorted(r.order_sn for r in records)
        assert {r["shop_id"] for r in rows} == {"1001"}
        # each row holds the detail Shopee answered for its order, decoded, not merely something
        answered = sandbox.details("1001")
        assert {r["order_sn"]: orjson.loads(r["order_detail"]) for r in rows} == answered
        assert sorted(answered) == sorted(r.order_sn for r in records)
        await _wait_committed(settings, {0: 50})


async def test_partial_batch_is_flushed_after_the_timeout(
    setup: Setup, sandbox: SandboxServer, database_url: str
) -> None:
    settings = await setup(batch_timeout_seconds=1.5)
    await sandbox.add_shop(database_url, "1002")
    await produce(
        settings.kafka_bootstrap_servers,
        settings.kafka_topic_marketplace_orders,
        [order("1002", f"P{i:02d}") for i in range(15)],
    )
    async with running_consumer(settings):
        await wait_for_rows(database_url, 15, within=20)
        calls = sandbox.order_calls("1002")
        assert len(calls) == 1
        assert len(calls[0].order_sns) == 15


async def test_two_shops_interleaved_on_one_partition_are_batched_separately(
    setup: Setup, sandbox: SandboxServer, database_url: str
) -> None:
    settings = await setup(batch_max_size=5, batch_timeout_seconds=30)
    await sandbox.add_shop(database_url, "2001")
    await sandbox.add_shop(database_url, "2002")
    records = [order(shop, f"{shop}-{i}") for i in range(5) for shop in ("2001", "2002")]
    await produce(settings.kafka_bootstrap_servers, settings.kafka_topic_marketplace_orders, records, partition=0)
    async with running_consumer(settings):
        await wait_for_rows(database_url, 10, within=20)
        for shop in ("2001", "2002"):
            (call,) = sandbox.order_calls(shop)
            assert sorted(call.order_sns) == [f"{shop}-{i}" for i in range(5)]
        await _wait_committed(settings, {0: 10})


async def test_duplicates_and_out_of_order_records_leave_the_newest_state_once(
    setup: Setup, sandbox: SandboxServer, database_url: str
) -> None:
    settings = await setup(batch_max_size=2, batch_timeout_seconds=0.5)
    await sandbox.add_shop(database_url, "4001")
    # Shopee knows the newest state of each order; the pushes arrive late, twice and out of order
    sandbox.state.orders.register(4001, "D1", "SHIPPED", 3000)
    sandbox.state.orders.register(4001, "D2", "COMPLETED", 5000)
    pushes = [
        order("4001", "D1", status="SHIPPED", update_time=3000),
        order("4001", "D1", status="READY_TO_SHIP", update_time=1000),
        order("4001", "D2", status="COMPLETED", update_time=5000),
        order("4001", "D1", status="SHIPPED", update_time=3000),
        order("4001", "D2", status="PROCESSED", update_time=2000),
        order("4001", "D2", status="READY_TO_SHIP", update_time=1000),
    ]
    await produce(settings.kafka_bootstrap_servers, settings.kafka_topic_marketplace_orders, pushes)
    async with running_consumer(settings):
        await _wait_committed(settings, {0: len(pushes)})
    rows = await fetch_rows(database_url, "SELECT order_sn, order_status, update_time FROM shopee_orders_raw")
    assert sorted((r["order_sn"], r["order_status"], r["update_time"]) for r in rows) == [
        ("D1", "SHIPPED", 3000),
        ("D2", "COMPLETED", 5000),
    ]


async def test_expired_token_is_refreshed_once_and_the_rotated_pair_stored(
    setup: Setup, sandbox: SandboxServer, database_url: str
) -> None:
    settings = await setup()
    await sandbox.add_shop(database_url, "5001", expired=True)  # expiry known in the database
    await sandbox.add_shop(database_url, "5002")
    sandbox.state.tokens.expire_access(5002, sandbox.state.now())  # expiry unknown: Shopee rejects it
    records = [order(shop, f"{shop}-E{i}") for i in range(3) for shop in ("5001", "5002")]
    await produce(settings.kafka_bootstrap_servers, settings.kafka_topic_marketplace_orders, records)
    async with running_consumer(settings):
        await wait_for_rows(database_url, 6, within=20)
    assert len(sandbox.refresh_calls()) == 2
    stored = {
        r["shop_id"]: r
        for r in await fetch_rows(
            database_url,
            "SELECT shop_id, access_token, refresh_token, access_token_expires_at FROM merchant_shopee_config",
        )
    }
    for shop in ("5001", "5002"):
        current = sandbox.state.tokens.current(int(shop))
        assert (stored[shop]["access_token"], stored[shop]["refresh_token"]) == (
            current.access_token,
            current.refresh_token,
        )
        assert stored[shop]["access_token_expires_at"].timestamp() > time.time() + 3600
    assert await dead_letters(settings.kafka_bootstrap_servers, settings.kafka_topic_dead_letter, wait=1) == []


async def test_transient_errors_and_rate_limits_are_retried_and_nothing_is_dead_lettered(
    setup: Setup, sandbox: SandboxServer, database_url: str
) -> None:
    settings = await setup(batch_max_size=5, batch_timeout_seconds=0.3, retry_max_attempts=3)
    # every call fails until the first 503 is seen: at random rates alone, the 8 or more
    # calls could all succeed (about 1 run in 100 did), and the test would prove nothing
    sandbox.set_faults(unavailable_rate=1.0)
    shops = [str(6000 + i) for i in range(4)]
    for shop in shops:
        await sandbox.add_shop(database_url, shop)
    records = [order(shop, f"{shop}-F{i}") for i in range(10) for shop in shops]
    await produce(settings.kafka_bootstrap_servers, settings.kafka_topic_marketplace_orders, records)
    async with running_consumer(settings):
        await until(lambda: _errors(sandbox).get("http_503", 0) > 0, within=30, what="a first 503 from the sandbox")
        sandbox.set_faults(error_rate=0.3, unavailable_rate=0.2)
        await asyncio.sleep(1)
        sandbox.set_faults(rate_limit_per_minute=4)  # 429 with Retry-After on top
        await wait_for_rows(database_url, 40, within=90)
        await _wait_committed(settings, {0: 40})
    assert await dead_letters(settings.kafka_bootstrap_servers, settings.kafka_topic_dead_letter, wait=1) == []


async def test_unknown_shop_and_unknown_order_are_dead_lettered_with_reasons(
    setup: Setup, sandbox: SandboxServer, database_url: str
) -> None:
    settings = await setup(batch_timeout_seconds=0.5)
    await sandbox.add_shop(database_url, "7001")
    records = [order("7999", "NOSHOP-1"), order("7999", "NOSHOP-2"), order("7001", "OK-1"), order("7001", "UNKNOWN-1")]
    await produce(settings.kafka_bootstrap_servers, settings.kafka_topic_marketplace_orders, records)
    async with running_consumer(settings):
        letters = await dead_letters(
            settings.kafka_bootstrap_servers, settings.kafka_topic_dead_letter, expect=3, wait=20
        )
        await _wait_committed(settings, {0: 4})
    by_sn = {d.record["order_sn"]: d for d in letters if d.record}
    assert {sn: d.reason for sn, d in by_sn.items()} == {
        "NOSHOP-1": "shop_unknown",
        "NOSHOP-2": "shop_unknown",
        "UNKNOWN-1": "order_not_found",
    }
    assert all(d.source == "consumer" and d.shop_id in ("7999", "7001") for d in letters)
    rows = await fetch_rows(database_url, "SELECT order_sn FROM shopee_orders_raw")
    assert [r["order_sn"] for r in rows] == ["OK-1"]


async def _wait_committed(settings: Settings, expected: dict[int, int], within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    got: dict[int, int] = {}
    while loop.time() < deadline:
        got = await committed_offsets(
            settings.kafka_bootstrap_servers, settings.kafka_consumer_group, settings.kafka_topic_marketplace_orders
        )
        if got == expected:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"committed offsets {got}, expected {expected}")


def _errors(sandbox: SandboxServer) -> dict[str, int]:
    """The sandbox's error answers so far, by kind."""
    errors: dict[str, int] = sandbox.state.stats.snapshot(sandbox.state.now())["totals"]["errors"]
    return errors
