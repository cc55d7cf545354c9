"""The consumer loop: fetch, batch per shop, start workers, commit what is durable.

One loop owns the Kafka consumer and all bookkeeping (like aiokafka's sender task). The
batcher, scheduler (which batch runs next) and offset tracker it drives are pure;
kafka_io.py and inflight.py are its I/O.

Offsets: a record's offset is committed only once its outcome (row or dead letter) is
durable; see offsets.py. On revocation and on shutdown the loop stops fetching, lets
in-flight batches finish within `shutdown_grace_seconds`, cancels the rest and commits
only what is durable. Abandoned and not-yet-started records are simply redelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import InconsistentGroupProtocolError

from service.consume.batcher import Batcher, Item
from service.consume.deadletters import DeadLetterSink
from service.consume.inflight import InFlight, WorkerCrashed, finish_or_abandon
from service.consume.kafka_io import (
    MAX_RECORDS_PER_POLL,
    POLL_SECONDS,
    Fetched,
    Fetcher,
    Rebalance,
    commit,
    no_common_strategy,
    open_consumer,
)
from service.consume.metrics import ConsumerMetrics
from service.consume.offsets import OffsetTracker
from service.consume.salvage import UNPACK_ERRORS, salvage
from service.consume.scheduler import Scheduler
from service.consume.throttle import ShopThrottle
from service.consume.worker import ShopeeAPI, StoreAPI, Worker
from service.records import OrderRecord
from service.settings import Settings
from service.types import Clock, Partition, Sleep

log = logging.getLogger(__name__)

COMMIT_INTERVAL_SECONDS = 0.5
TIDY_INTERVAL_SECONDS = 60.0


class Consumer:
    """`await Consumer(settings, shopee=..., store=..., dead_letters=..., metrics=...).run(stop)`."""

    def __init__(
        self,
        settings: Settings,
        *,
        shopee: ShopeeAPI,
        store: StoreAPI,
        dead_letters: DeadLetterSink,
        metrics: ConsumerMetrics,
        throttle: ShopThrottle | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        kafka_options: dict[str, Any] | None = None,
        kafka_factory: Callable[..., AIOKafkaConsumer] = AIOKafkaConsumer,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._kafka_options = kafka_options if kafka_options is not None else settings.kafka_client_options()
        self._kafka_factory = kafka_factory
        self._throttle = throttle or ShopThrottle(
            settings.shop_rate_limit_per_minute, window_seconds=60, clock=clock, sleep=sleep
        )
        self._worker = Worker(
            settings,
            shopee=shopee,
            store=store,
            dead_letters=dead_letters,
            throttle=self._throttle,
            metrics=metrics,
            sleep=sleep,
        )
        self._batcher = Batcher(max_size=settings.batch_max_size, timeout_seconds=settings.batch_timeout_seconds)
        self._scheduler = Scheduler(max_concurrency=settings.max_concurrency, budget=self._throttle)
        self._offsets = OffsetTracker()
        self._tasks = InFlight()
        self._assigned: set[Partition] = set()
        self._next_offset: dict[Partition, int] = {}  # where salvage rewinds to
        self._kafka: AIOKafkaConsumer | None = None
        self._fatal: BaseException | None = None
        self._last_commit = self._last_tidy = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then shut down gracefully (bounded)."""
        s = self._settings
        listener = Rebalance(self.on_assigned, self.on_revoked)
        kafka = await open_consumer(self._kafka_factory, self._kafka_options, s, listener)
        self._kafka = kafka
        log.info("consumer started", extra={"topic": s.kafka_topic_marketplace_orders, "group": s.kafka_consumer_group})
        fetcher = Fetcher(kafka, self._tasks.wake, self._metrics, max_pending=s.consumer_max_pending_records)
        try:
            await self._loop(kafka, fetcher, stop)
        except BaseException:
            # CancelledError included: a cancel that did not come from our owner is a failure too
            log.exception("consumer loop ended by an error; shutting down")
            raise
        finally:
            try:
                await fetcher.close()
                await self._shutdown(kafka)
            finally:
                self._kafka = None
                await kafka.stop()
                log.info("consumer stopped")
        if self._fatal is not None:
            raise WorkerCrashed("a batch worker died; see the log for its traceback") from self._fatal

    async def _loop(self, kafka: AIOKafkaConsumer, fetcher: Fetcher, stop: asyncio.Event) -> None:
        while not stop.is_set() and self._fatal is None:
            self._tasks.wake.clear()  # before reaping: a task finishing from here on wakes the fetch
            self._reap()
            try:
                self._intake(await fetcher.fetch(self._poll_timeout()))
            except UNPACK_ERRORS as exc:
                await self._salvage(kafka, exc)
            except InconsistentGroupProtocolError:
                raise no_common_strategy(self._settings.kafka_consumer_group) from None
            if self._clock() - self._last_commit >= COMMIT_INTERVAL_SECONDS:
                await self._commit(kafka)
            fetcher.backpressure(self._offsets.pending)
            if self._clock() - self._last_tidy >= TIDY_INTERVAL_SECONDS:
                self._last_tidy = self._clock()
                self._throttle.forget_idle(self._last_tidy)  # memory follows active shops

    async def _salvage(self, kafka: AIOKafkaConsumer, exc: Exception) -> None:
        """A batch could not be unpacked: take the good records, dead-letter the rest (salvage.py)."""
        log.warning("a fetched batch could not be unpacked; salvaging", extra={"error": repr(exc)})
        salvaged = await salvage(kafka, self._next_offset, max_records=MAX_RECORDS_PER_POLL)
        now = self._clock()
        for partition, offset, message, detail in salvaged.in_offset_order():
            if partition not in self._assigned:
                continue
            if message is not None:
                self._take(partition, offset, message.key, message.value or b"", now)
                continue
            self._offsets.track(partition, offset)
            self._next_offset[partition] = offset + 1
            self._tasks.start_letter(partition, offset, self._worker.dead_letter_undecodable(None, b"", detail))
        self._intake({})

    async def _shutdown(self, kafka: AIOKafkaConsumer) -> None:
        """Stop fetching, finish or abandon in-flight work within the grace period, commit."""
        with contextlib.suppress(Exception):
            kafka.pause(*kafka.assignment())
        tasks = self._tasks.tasks()
        if tasks:
            log.info("waiting for in-flight batches", extra={"batches": len(tasks)})
            await finish_or_abandon(tasks, self._settings.shutdown_grace_seconds)
        self._reap()
        await self._commit(kafka)

    def _intake(self, fetched: Fetched) -> None:
        now = self._clock()
        for tp, messages in fetched.items():
            partition: Partition = (tp.topic, tp.partition)
            if partition in self._assigned:
                for message in messages:
                    self._take(partition, message.offset, message.key, message.value or b"", now)
        for batch in self._batcher.due(now):
            self._metrics.batch_age.observe(max(0.0, now - batch.opened_at))
            self._scheduler.add(batch)
        self._reap()
        if self._kafka is not None:
            for batch in self._scheduler.start(now):
                if batch.requeues == 0:
                    self._metrics.batch_size.observe(batch.size)
                self._tasks.start_batch(batch, self._worker.process(batch))
        self._metrics.batches_in_flight.set(self._scheduler.in_flight)

    def _take(self, partition: Partition, offset: int, key: bytes | None, value: bytes, now: float) -> None:
        self._offsets.track(partition, offset)
        self._next_offset[partition] = offset + 1
        try:
            record = OrderRecord.decode(value)
        except ValueError as exc:  # orjson's JSONDecodeError and OrderRecord's checks are ValueErrors
            self._tasks.start_letter(partition, offset, self._worker.dead_letter_undecodable(key, value, str(exc)))
            return
        full = self._batcher.add(Item(partition, offset, record), now)
        if full is not None:
            self._metrics.batch_age.observe(max(0.0, now - full.opened_at))
            self._scheduler.add(full)

    def _reap(self) -> None:
        """Account for finished tasks: offsets of durable work, hand back deferred work."""
        reaped = self._tasks.reap()
        now = self._clock()
        for shop in reaped.finished_shops:
            self._scheduler.finished(shop)
        self._offsets.done(reaped.durable)
        for batch, delay in reaped.handed_back:
            kept = batch.without_partitions(batch.partitions() - self._assigned)
            if kept is not None:
                self._scheduler.retry(kept, now + delay)
        self._fatal = self._fatal or reaped.crashed
        self._metrics.batches_in_flight.set(self._scheduler.in_flight)
        self._metrics.records_pending.set(self._offsets.pending)

    def _poll_timeout(self) -> float:
        deadline = self._batcher.next_deadline()
        return POLL_SECONDS if deadline is None else min(POLL_SECONDS, max(0.0, deadline - self._clock()))

    async def _commit(self, kafka: AIOKafkaConsumer, only: set[Partition] | None = None) -> None:
        """Commit durable positions of our partitions (`only`: those being revoked)."""
        self._last_commit = self._clock()
        owned = self._assigned if only is None else only
        positions = {p: o for p, o in self._offsets.committable().items() if p in owned}
        if positions and await commit(kafka, positions, self._metrics):
            self._offsets.committed(positions)

    def on_assigned(self, assigned: set[Partition]) -> None:
        self._assigned |= assigned
        log.info("partitions assigned", extra={"partitions": sorted(f"{t}-{p}" for t, p in assigned)})

    async def on_revoked(self, revoked: set[Partition]) -> None:
        """Finish (bounded) the work of revoked partitions, commit what is durable, drop the rest."""
        if not revoked:
            return
        self._assigned -= revoked
        for partition in revoked:
            self._next_offset.pop(partition, None)
        dropped = self._batcher.drop_partitions(revoked) + self._scheduler.drop_partitions(revoked)
        await finish_or_abandon(self._tasks.tasks(revoked), self._settings.shutdown_grace_seconds)
        try:
            self._reap()
            if self._kafka is not None:
                await self._commit(self._kafka, only=revoked)
        finally:
            self._offsets.forget(revoked)
        log.info(
            "partitions revoked",
            extra={"partitions": sorted(f"{t}-{p}" for t, p in revoked), "dropped_records": dropped},
        )
