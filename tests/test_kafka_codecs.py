"""A batch the consumer cannot unpack becomes dead letters, and its partition moves on.

With the codecs installed every real batch unpacks (test_kafka_java.py). What remains is a
process without a codec (an image built without aiokafka's codec extras) or a corrupt
batch; the broker itself refuses corrupt batches, so the test takes the codec away from
this process (aiokafka.codec.has_zstd) after producing real zstd batches to the real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiokafka.codec
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from service.records import OrderRecord
from tests.consume_helpers import (
    committed_offsets,
    consumer_settings,
    dead_letters,
    migrated,
    order,
    running_consumer,
    wait_for_rows,
)
from tests.sandbox_server import SandboxServer
from tests.schemas import assert_valid_dead_letter

pytestmark = pytest.mark.integration


async def produce_batch(bootstrap: str, topic: str, partition: int, codec: str, records: list[OrderRecord]) -> None:
    """`records` as one batch compressed with `codec`."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=100)
    await producer.start()
    try:
        batch = producer.create_batch()
        for r in records:
            assert batch.append(key=r.key.encode(), value=r.encode(), timestamp=None) is not None
        await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()


async def test_records_of_a_batch_in_a_missing_codec_are_dead_lettered_and_the_rest_become_rows(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    database_url: str,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic, dlq = await new_topic(partitions=4, prefix="orders"), await new_topic(prefix="dlq")
    await migrated(database_url)
    others = {0: "861002", 1: "861003", 3: "861004"}
    for shop in ("861001", *others.values()):
        await sandbox.add_shop(database_url, shop)
    # good partitions around the bad one: some are unpacked in the same fetch before it fails
    a = [order("861001", f"A{i}") for i in range(9)]
    await produce_batch(kafka_bootstrap, topic, 2, "gzip", a[0:3])
    await produce_batch(kafka_bootstrap, topic, 2, "zstd", a[3:6])
    await produce_batch(kafka_bootstrap, topic, 2, "gzip", a[6:9])
    for partition, shop in others.items():
        await produce_batch(
            kafka_bootstrap, topic, partition, "gzip", [order(shop, f"P{partition}{i}") for i in range(3)]
        )
    settings = consumer_settings(
        bootstrap=kafka_bootstrap, topic=topic, dlq=dlq, database_url=database_url, shopee_url=sandbox.url
    )
    monkeypatch.setattr(aiokafka.codec, "has_zstd", lambda: False)
    async with running_consumer(settings):
        rows = await wait_for_rows(database_url, 15, within=60)
        letters = await dead_letters(kafka_bootstrap, dlq, expect=3, wait=30)
        for _ in range(100):
            if await committed_offsets(kafka_bootstrap, settings.kafka_consumer_group, topic) == {
                0: 3,
                1: 3,
                2: 9,
                3: 3,
            }:
                break
            await asyncio.sleep(0.2)
    others_sns = [f"P{p}{i}" for p in others for i in range(3)]
    assert sorted(r["order_sn"] for r in rows) == sorted(["A0", "A1", "A2", "A6", "A7", "A8", *others_sns])
    assert [(d.reason, d.raw_body()) for d in letters] == [("undecodable_record", b"")] * 3
    assert [d.detail.rsplit("offset ", 1)[1] for d in letters] == ["3)", "4)", "5)"]
    assert all("zstd" in d.detail for d in letters)
    for letter in letters:
        assert_valid_dead_letter(orjson.loads(letter.encode()))
    assert await committed_offsets(kafka_bootstrap, settings.kafka_consumer_group, topic) == {0: 3, 1: 3, 2: 9, 3: 3}
