"""The runner's bookkeeping around a rebalance, with a fake Kafka consumer handed in."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from service.consume.metrics import ConsumerMetrics
from service.consume.runner import Consumer
from service.settings import Settings


class FakeKafka:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


class Unused:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"not expected in this test: {name}")


def consumer_with(kafka: FakeKafka) -> Consumer:
    consumer = Consumer(
        Settings(shutdown_grace_seconds=1),
        shopee=Unused(),
        store=Unused(),
        dead_letters=Unused(),
        metrics=ConsumerMetrics(CollectorRegistry()),
        kafka_options={},
    )
    consumer._kafka = kafka  # type: ignore[assignment]
    return consumer


async def test_revoked_partitions_commit_their_durable_offsets_before_they_go() -> None:
    kafka = FakeKafka()
    consumer = consumer_with(kafka)
    revoked, kept = ("orders", 0), ("orders", 1)
    consumer.on_assigned({revoked, kept})
    for partition in (revoked, kept):
        for offset in range(5):
            consumer._offsets.track(partition, offset)
    consumer._offsets.done([(revoked, 0), (revoked, 1), (revoked, 2), (revoked, 4), (kept, 0)])

    await consumer.on_revoked({revoked})

    # up to, not past, the lowest offset that is not durable (3); the kept partition waits
    assert kafka.commits == [{TopicPartition("orders", 0): 3}]
    assert consumer._assigned == {kept}


async def test_revoking_never_commits_past_a_record_that_is_not_durable() -> None:
    kafka = FakeKafka()
    consumer = consumer_with(kafka)
    consumer.on_assigned({("orders", 0)})
    for offset in (7, 8):
        consumer._offsets.track(("orders", 0), offset)
    consumer._offsets.done([(("orders", 0), 8)])
    await consumer.on_revoked({("orders", 0)})
    assert kafka.commits in ([], [{TopicPartition("orders", 0): 7}])
