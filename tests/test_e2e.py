"""End to end through POST /webhooks/shopee: real ingest, Kafka, consumer, sandbox, Postgres."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest

from service.sandbox.config import DEFAULT_PARTNER_KEY
from tests.conftest import read_topic
from tests.e2e import CALLBACK_PATH, Stack
from tests.ledger import check_ledger
from tests.pushes import real_push, signed_headers

pytestmark = pytest.mark.integration


async def stack_for(kafka_bootstrap: str, database_url: str, **settings: str) -> Stack:
    return await Stack(kafka_bootstrap, database_url, settings=settings).start()


@pytest.fixture
async def stack(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Stack]:
    s = await stack_for(kafka_bootstrap, database_url, BATCH_TIMEOUT_SECONDS="3")
    try:
        yield s
    finally:
        s.stop()


async def post(stack: Stack, bodies: list[bytes]) -> list[int]:
    """Send signed pushes; Shopee knows its orders, so the sandbox is told about each first."""
    url = stack.ingest_url + CALLBACK_PATH
    async with httpx.AsyncClient(timeout=10) as client:
        out = []
        for body in bodies:
            push = orjson.loads(body)
            order = {
                "shop_id": push["shop_id"],
                "order_sn": push["data"]["ordersn"],
                "order_status": push["data"]["status"],
                "update_time": push["data"]["update_time"],
            }
            (await client.post(stack.sandbox_url + "/sandbox/orders", json=order)).raise_for_status()
            r = await client.post(url, content=body, headers=signed_headers(body, DEFAULT_PARTNER_KEY, url))
            assert r.content == b""
            out.append(r.status_code)
        return out


async def rows(database_url: str, shop_id: int) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(
            await conn.fetch("SELECT * FROM shopee_orders_raw WHERE shop_id = $1 ORDER BY order_sn", str(shop_id))
        )
    finally:
        await conn.close()


async def wait_rows(database_url: str, shop_id: int, count: int, seconds: float = 60) -> None:
    """Wait until the shop has `count` rows (fails after a generous `seconds`)."""
    deadline = time.monotonic() + seconds
    while len(await rows(database_url, shop_id)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"shop {shop_id}: fewer than {count} rows after {seconds}s")
        await asyncio.sleep(0.1)


async def test_fifty_orders_of_one_shop_are_one_call_without_waiting_for_the_timeout(
    kafka_bootstrap: str, database_url: str
) -> None:
    # an hour's timeout: rows at all mean the 50th order flushed the batch
    stack = await stack_for(kafka_bootstrap, database_url, BATCH_TIMEOUT_SECONDS="3600")
    try:
        shop = 810001
        await stack.add_shops([shop])
        assert (
            await post(stack, [real_push(shop, f"FULL{i:03d}", "READY_TO_SHIP", 1_735_689_600 + i) for i in range(50)])
            == [200] * 50
        )
        await wait_rows(database_url, shop, 50)
        stats = (await stack.stats())["shops"][str(shop)]
        assert stats["calls"] == 1 and stats["order_sns_requested"] == 50
        got = await rows(database_url, shop)
        sns = [f"FULL{i:03d}" for i in range(50)]
        assert [r["order_sn"] for r in got] == sns
        # each row holds the detail Shopee gives for its order, decoded, not merely something
        assert {r["order_sn"]: orjson.loads(r["order_detail"]) for r in got} == await stack.order_details(shop, sns)
    finally:
        stack.stop()


async def test_fifteen_orders_are_one_call_when_the_timeout_expires(stack: Stack, database_url: str) -> None:
    shop = 810002
    await stack.add_shops([shop])
    assert await post(stack, [real_push(shop, f"PART{i:03d}") for i in range(15)]) == [200] * 15
    await wait_rows(database_url, shop, 15)
    stats = (await stack.stats())["shops"][str(shop)]
    assert stats["calls"] == 1 and stats["order_sns_requested"] == 15


async def test_single_order_becomes_a_row_after_the_timeout(stack: Stack, database_url: str) -> None:
    shop = 810003
    await stack.add_shops([shop])
    assert await post(stack, [real_push(shop, "TEST_SINGLE_001", "PROCESSED", 1_735_689_600)]) == [200]
    await wait_rows(database_url, shop, 1)
    [row] = await rows(database_url, shop)
    assert (row["order_sn"], row["order_status"], row["update_time"]) == ("TEST_SINGLE_001", "PROCESSED", 1_735_689_600)


async def test_unpaid_reaches_nothing(stack: Stack, database_url: str, kafka_bootstrap: str) -> None:
    shop = 810004
    await stack.add_shops([shop])
    assert await post(stack, [real_push(shop, "TEST_UNPAID_001", "UNPAID")]) == [200]
    marker = 810005
    await stack.add_shops([marker])
    assert await post(stack, [real_push(marker, "MARKER")]) == [200]
    await wait_rows(database_url, marker, 1)  # the pipeline has had its chance
    assert await rows(database_url, shop) == []
    assert str(shop) not in (await stack.stats())["shops"] or (await stack.stats())["shops"][str(shop)]["calls"] == 0
    topic = await read_topic(kafka_bootstrap, stack.topic, expect=1)
    assert all(b"TEST_UNPAID_001" not in r.value for r in topic)


async def test_push_sender_ledger_holds_with_duplicates_out_of_order_and_unpaid(
    stack: Stack, database_url: str, kafka_bootstrap: str
) -> None:
    shops = list(range(820000, 820012))
    await stack.add_shops(shops)
    ledger = await stack.push(
        shops=len(shops),
        shop_id_base=shops[0],
        orders=600,
        duplicates=0.2,
        out_of_order=True,
        include_unpaid=True,
        concurrency=32,
    )
    assert all(e.acknowledged for e in ledger.entries), "every push must be answered 2xx"
    report = await check_ledger(ledger, database_url, bootstrap=kafka_bootstrap, dlq_topic=stack.dlq, wait_seconds=90)
    assert report.rows == report.expected > 400
