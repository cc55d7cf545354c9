"""The consumer loop's Kafka I/O: fetch without holding up the loop, pause, commit.

A finished batch frees a concurrency slot that a ready batch should take at once, not
after the fetch's poll timeout: with everything fetched, waiting out the poll would cap
throughput at max_concurrency batches per poll interval. So a fetch gives way as soon as
`wake` is set, and is not cancelled when it does: the next call picks up its records.

Backpressure: when more than `max_pending` fetched records are not yet durable, fetching
pauses (consumer.pause) until half of them are, instead of growing memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import InconsistentGroupProtocolError, KafkaError

from service import kafka_join
from service.consume.metrics import ConsumerMetrics
from service.errors import ConfigError
from service.kafka_client import ASSIGNORS
from service.settings import Settings
from service.types import Partition

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
MAX_RECORDS_PER_POLL = 2000

Fetched = dict[TopicPartition, list[Any]]


async def open_consumer(
    factory: Callable[..., AIOKafkaConsumer],
    options: dict[str, Any],
    settings: Settings,
    listener: ConsumerRebalanceListener,
) -> AIOKafkaConsumer:
    """A started group member subscribed to the main topic, committing only by hand."""
    kafka_join.install()  # one JoinGroup per join with our two assignors (service/kafka_join.py)
    kafka = factory(
        **options,
        partition_assignment_strategy=ASSIGNORS,  # range lets Java consumers share the group
        group_id=settings.kafka_consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=max(300_000, int(settings.shutdown_grace_seconds * 4000)),
    )
    kafka.subscribe([settings.kafka_topic_marketplace_orders], listener=listener)
    try:
        await kafka.start()
    except InconsistentGroupProtocolError:
        await kafka.stop()
        raise no_common_strategy(settings.kafka_consumer_group) from None
    return kafka


def no_common_strategy(group: str) -> ConfigError:
    return ConfigError(
        f"consumer group {group}: its other members offer no partition "
        "assignment strategy of ours (roundrobin, range); see the README on Java consumers"
    )


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands partition changes to the loop's owner as (topic, partition) pairs."""

    def __init__(
        self,
        on_assigned: Callable[[set[Partition]], None],
        on_revoked: Callable[[set[Partition]], Awaitable[None]],
    ) -> None:
        self._assigned = on_assigned
        self._revoked = on_revoked

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned({(tp.topic, tp.partition) for tp in assigned})


class Fetcher:
    def __init__(
        self, kafka: AIOKafkaConsumer, wake: asyncio.Event, metrics: ConsumerMetrics, *, max_pending: int
    ) -> None:
        self._kafka = kafka
        self._wake = wake
        self._metrics = metrics
        self._max_pending = max_pending
        self._fetch: asyncio.Future[Fetched] | None = None
        self._paused = False

    async def fetch(self, wait_seconds: float) -> Fetched:
        """Records from Kafka, or nothing once `wait_seconds` passed or `wake` was set."""
        if self._fetch is None:
            poll = self._kafka.getmany(timeout_ms=int(POLL_SECONDS * 1000), max_records=MAX_RECORDS_PER_POLL)
            self._fetch = asyncio.ensure_future(poll)
        if not self._fetch.done():
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({self._fetch, waker}, timeout=wait_seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waker.cancel()
        if not self._fetch.done():
            return {}
        fetch, self._fetch = self._fetch, None
        return fetch.result()

    def backpressure(self, pending: int) -> None:
        """Pause fetching above `max_pending` records not yet durable; resume at half."""
        if not self._paused and pending >= self._max_pending:
            self._paused = True
            log.warning("pausing fetch: too many records pending", extra={"pending": pending})
        elif self._paused and pending <= self._max_pending // 2:
            self._paused = False
            self._kafka.resume(*self._kafka.assignment())
            log.info("resuming fetch", extra={"pending": pending})
        if self._paused:
            self._kafka.pause(*self._kafka.assignment())  # again: partitions assigned since
        self._metrics.fetch_paused.set(1 if self._paused else 0)
        self._metrics.records_pending.set(pending)

    async def close(self) -> None:
        """Abandon a fetch in progress (its records are fetched again by whoever owns them next)."""
        if self._fetch is not None:
            self._fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await self._fetch
            self._fetch = None


async def commit(kafka: AIOKafkaConsumer, positions: dict[Partition, int], metrics: ConsumerMetrics) -> bool:
    """Commit `positions`; False (and a warning) when Kafka refused: the next commit retries."""
    try:
        await kafka.commit({TopicPartition(topic, part): offset for (topic, part), offset in positions.items()})
    except KafkaError as exc:
        metrics.commits.labels("failed").inc()
        log.warning("offset commit failed; will retry", extra={"error": repr(exc)})
        return False
    metrics.commits.labels("ok").inc()
    return True
