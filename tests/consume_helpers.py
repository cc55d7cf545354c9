"""Helpers for the consumer's tests: fake clock, migrated databases, shop seeding."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from pydantic import SecretStr

from service.consume.main import consume
from service.migrate import migrate
from service.records import DeadLetter, OrderRecord
from service.settings import Settings
from tests.conftest import TopicFactory, read_topic
from tests.fakes import FakeClock
from tests.processes import child_env

if TYPE_CHECKING:
    from tests.sandbox_server import SandboxServer

__all__ = ["FakeClock"]  # re-exported for the tests that import it from here


async def migrated(database_url: str) -> str:
    await migrate(database_url)
    return database_url


async def seed_shop(
    database_url: str,
    shop_id: str,
    *,
    access_token: str = "access-0",  # noqa: S107 - test data
    refresh_token: str = "refresh-0",  # noqa: S107 - test data
    is_active: bool = True,
    expires_at: dt.datetime | None = None,
) -> None:
    """The seed's own INSERT (docs/contract.md#tables), plus an expiry when the test wants one."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO merchant_shopee_config (merchant_id, shop_id, partner_id, access_token, refresh_token, "
            "is_active) VALUES ($1, $2, 2001887, $3, $4, $5)",
            uuid.uuid4(),
            shop_id,
            access_token,
            refresh_token,
            is_active,
        )
        if expires_at is not None:
            await conn.execute(
                "UPDATE merchant_shopee_config SET access_token_expires_at = $2 WHERE shop_id = $1", shop_id, expires_at
            )
    finally:
        await conn.close()


async def fetch_rows(database_url: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


# -- the Shopee sandbox, served for real on 127.0.0.1 -------------------------------------

PARTNER_ID = 2001887
PARTNER_KEY = "consumer_test_partner_key"


def consumer_settings(
    *, bootstrap: str, topic: str, dlq: str, database_url: str, shopee_url: str, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic_marketplace_orders": topic,
        "kafka_topic_dead_letter": dlq,
        "kafka_consumer_group": f"g-{uuid.uuid4().hex[:10]}",
        "shopee_partner_id": PARTNER_ID,
        "shopee_partner_key": PARTNER_KEY,
        "shopee_api_base_url": shopee_url,
        "database_url": database_url,
        "batch_timeout_seconds": 1.0,
        "consumer_metrics_port": 0,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.5,
        "shutdown_grace_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


async def fresh_settings(
    bootstrap: str,
    new_topic: TopicFactory,
    database_url: str,
    sandbox: SandboxServer,
    *,
    partitions: int = 1,
    **overrides: Any,
) -> Settings:
    """Consumer settings on fresh topics of the test's own and a migrated database."""
    topic = await new_topic(partitions=partitions, prefix="orders")
    dlq = await new_topic(partitions=1, prefix="dlq")
    await migrated(database_url)
    return consumer_settings(
        bootstrap=bootstrap, topic=topic, dlq=dlq, database_url=database_url, shopee_url=sandbox.url, **overrides
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `python -m service consume` load `settings`."""
    values = {}
    for name, value in settings.model_dump().items():
        if value is not None:
            values[name.upper()] = str(value.get_secret_value() if isinstance(value, SecretStr) else value)
    return child_env(**values)


@asynccontextmanager
async def running_consumer(settings: Settings, **wiring: Any) -> AsyncIterator[None]:
    """The whole consumer (main.consume) in this event loop; stopped and awaited on exit.

    `wiring`: consume()'s keyword arguments (throttle, clock, sleep)."""
    stop = asyncio.Event()
    task = asyncio.create_task(consume(settings, stop, **wiring))
    try:
        yield
        if task.done():
            task.result()  # a consumer that died fails the test
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def order(shop_id: str, sn: str, *, status: str = "READY_TO_SHIP", update_time: int = 1000) -> OrderRecord:
    return OrderRecord(
        shop_id=shop_id,
        order_sn=sn,
        order_status=status,
        timestamp=int(time.time() * 1000),
        update_time=update_time,
        event_id=f"{shop_id}-{sn}-{status}-{update_time}",
    )


async def produce(
    bootstrap: str, topic: str, records: list[OrderRecord], *, partition: int | None = None
) -> list[tuple[int, int]]:
    """Send the records (acks=all) and return the (partition, offset) each one got."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=r.encode(), key=r.key.encode(), partition=partition) for r in records
        ]
        return [(meta.partition, meta.offset) for meta in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


async def wait_for_rows(
    database_url: str, expected: int, *, within: float = 30.0, where: str = "TRUE"
) -> list[asyncpg.Record]:
    """Poll shopee_orders_raw until it holds `expected` rows (fails after `within` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    rows: list[asyncpg.Record] = []
    while loop.time() < deadline:
        rows = await fetch_rows(database_url, f"SELECT * FROM shopee_orders_raw WHERE {where} ORDER BY order_sn")  # noqa: S608 - test-controlled
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {expected} rows within {within}s, found {len(rows)}")


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets on `topic` by partition; none while the group has no coordinator yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:
        return {}
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The offset after the last record of each of the `partitions` of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def dead_letters(bootstrap: str, topic: str, *, expect: int | None = None, wait: float = 5.0) -> list[DeadLetter]:
    return [DeadLetter.decode(r.value) for r in await read_topic(bootstrap, topic, expect=expect, wait_seconds=wait)]
