"""KafkaSink's batches against the real broker: order per key, each push its own outcome."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from service.errors import SinkUnavailable
from service.ingest.sink import BATCHED_MAX_BYTES, KafkaSink
from service.settings import Settings
from tests.conftest import TopicFactory, read_topic
from tests.partitioner import partition_for

pytestmark = pytest.mark.integration

SHOPS = 20
PER_SHOP = 50
PAD = "x" * 2000  # several batches per partition, so that their order matters


async def started_sink(bootstrap: str) -> KafkaSink:
    sink = KafkaSink(Settings(kafka_bootstrap_servers=bootstrap))
    await sink.start()
    await sink.producer()
    return sink


async def test_concurrent_records_are_acknowledged_and_keep_their_order_per_key(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic(partitions=6)
    sink = await started_sink(kafka_bootstrap)
    try:
        await sink.send(topic, b"shop-0", b'{"warm":1}', budget_seconds=10)  # metadata for the topic
        sends = [
            sink.send(
                topic, f"shop-{shop}".encode(), orjson.dumps({"shop": shop, "n": n, "pad": PAD}), budget_seconds=10
            )
            for n in range(PER_SHOP)
            for shop in range(SHOPS)
        ]
        assert await asyncio.gather(*sends) == ["kafka"] * len(sends)
    finally:
        await sink.stop()
    records = [orjson.loads(r.value) for r in await read_topic(kafka_bootstrap, topic, expect=len(sends) + 1)]
    per_shop: dict[int, list[int]] = {}
    for value in records[1:] if "warm" in records[0] else records:
        if "shop" in value:
            per_shop.setdefault(value["shop"], []).append(value["n"])
    assert per_shop == {shop: list(range(PER_SHOP)) for shop in range(SHOPS)}


async def test_a_record_the_broker_refuses_fails_only_its_own_push(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    sink = await started_sink(kafka_bootstrap)
    try:
        await sink.send(topic, b"shop-1", b"{}", budget_seconds=10)
        huge = b"x" * (2 * 1024 * 1024)  # past the broker's and the producer's 1 MiB limits
        assert len(huge) > BATCHED_MAX_BYTES
        small = [sink.send(topic, b"shop-1", b'{"n":%d}' % n, budget_seconds=10) for n in range(20)]
        outcomes = await asyncio.gather(
            *small[:10], sink.send(topic, b"shop-1", huge, budget_seconds=10), *small[10:], return_exceptions=True
        )
    finally:
        await sink.stop()
    assert isinstance(outcomes[10], SinkUnavailable)
    assert outcomes[:10] + outcomes[11:] == ["kafka"] * 20


async def test_a_push_that_gives_up_does_not_fail_the_others(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    topic = await new_topic(partitions=1)
    sink = await started_sink(kafka_bootstrap)
    try:
        await sink.send(topic, b"shop-1", b"{}", budget_seconds=10)
        tasks = [
            asyncio.create_task(sink.send(topic, b"shop-1", b'{"n":%d}' % n, budget_seconds=10)) for n in range(10)
        ]
        await asyncio.sleep(0)  # every record is in the open batch
        tasks[3].cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await sink.stop()
    assert isinstance(outcomes[3], asyncio.CancelledError)
    assert outcomes[:3] + outcomes[4:] == ["kafka"] * 9


async def test_a_batch_whose_pushes_all_gave_up_is_not_sent(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    """Their pushes were answered another way (outbox, 503): sending the batch would only duplicate them."""
    topic = await new_topic(partitions=1)
    sink = await started_sink(kafka_bootstrap)
    try:
        await sink.send(topic, b"shop-1", b'{"n":0}', budget_seconds=10)
        first = asyncio.create_task(sink.send(topic, b"shop-1", b'{"n":1}', budget_seconds=10))
        for _ in range(3):
            await asyncio.sleep(0)  # the batch holding n=1 is handed to the producer, in flight
        gave_up = [asyncio.create_task(sink.send(topic, b"shop-1", b'{"n":%d}' % n, budget_seconds=10)) for n in (2, 3)]
        await asyncio.sleep(0)  # both wait in the next batch
        for task in gave_up:
            task.cancel()
        assert await first == "kafka"
        await asyncio.gather(*gave_up, return_exceptions=True)
        await sink.send(topic, b"shop-1", b'{"n":4}', budget_seconds=10)
    finally:
        await sink.stop()
    sent = [orjson.loads(r.value)["n"] for r in await read_topic(kafka_bootstrap, topic, expect=3)]
    assert sent == [0, 1, 4]


async def test_records_reach_partitions_added_to_the_topic(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    """The batcher keeps the topic's partitions between metadata updates, not past them."""
    topic = await new_topic(partitions=2)
    key = next(k for k in (f"shop-{n}".encode() for n in range(100)) if partition_for(k, 4) >= 2)
    sink = await started_sink(kafka_bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await sink.send(topic, key, b'{"n":0}', budget_seconds=10)
        await admin.create_partitions({topic: NewPartitions(total_count=4)})
        producer = await sink.producer()
        while len(producer.client.cluster.partitions_for_topic(topic) or ()) < 4:
            await producer.client.force_metadata_update()
        await sink.send(topic, key, b'{"n":1}', budget_seconds=10)
    finally:
        await admin.close()
        await sink.stop()
    placed = {orjson.loads(r.value)["n"]: r.partition for r in await read_topic(kafka_bootstrap, topic, expect=2)}
    assert placed == {0: partition_for(key, 2), 1: partition_for(key, 4)}
