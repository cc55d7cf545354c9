"""The consumer loop: fetch, batch per shop, schedule workers, commit what is durable.

One loop owns the Kafka consumer and all bookkeeping (like aiokafka's sender task); the
batcher, throttle and offset tracker it drives are pure. Workers run as tasks, at most
`max_concurrency` at once and one per shop, so a shop's batches complete in order.

Offsets: a record's offset is committed only once its outcome (row or dead letter) is
durable; see offsets.py. On revocation and on shutdown the loop stops fetching, lets
in-flight batches finish within `shutdown_grace_seconds`, cancels the rest and commits
only what is durable. Abandoned and not-yet-started records are simply redelivered.

Backpressure: when more than `consumer_max_pending_records` fetched records are not yet
durable, fetching pauses (consumer.pause) until half of them are, instead of growing
memory without bound.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import InconsistentGroupProtocolError, KafkaError

from service.consume.batcher import Batch, Batcher, Item, Partition
from service.consume.deadletters import DeadLetterSink
from service.consume.metrics import ConsumerMetrics
from service.consume.offsets import OffsetTracker
from service.consume.salvage import UNPACK_ERRORS, salvage
from service.consume.throttle import ShopThrottle
from service.consume.worker import BatchResult, ShopeeAPI, StoreAPI, Worker
from service.errors import ConfigError, GatewayError
from service.kafka_client import ASSIGNORS, client_options
from service.records import DeadLetter, OrderRecord
from service.settings import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
COMMIT_INTERVAL_SECONDS = 0.5
MAX_RECORDS_PER_POLL = 2000
TIDY_INTERVAL_SECONDS = 60.0


class WorkerCrashed(RuntimeError):
    """A batch task died of an unexpected error: the consumer stops instead of hanging."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Consumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.on_revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.on_assigned({(tp.topic, tp.partition) for tp in assigned})


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
        clock: Callable[[], float] = time.monotonic,
        kafka_options: dict[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._dead_letters = dead_letters
        self._kafka_options = kafka_options if kafka_options is not None else client_options(settings)
        self._throttle = throttle or ShopThrottle(settings.shop_rate_limit_per_minute, window_seconds=60, clock=clock)
        self._worker = Worker(
            settings,
            shopee=shopee,
            store=store,
            dead_letters=dead_letters,
            throttle=self._throttle,
            metrics=metrics,
        )
        self._batcher = Batcher(max_size=settings.batch_max_size, timeout_seconds=settings.batch_timeout_seconds)
        self._offsets = OffsetTracker()
        self._ready: dict[str, deque[Batch]] = {}
        self._not_before: dict[str, float] = {}
        self._in_flight: dict[str, asyncio.Task[BatchResult]] = {}
        self._batch_of: dict[asyncio.Task[BatchResult], Batch] = {}
        self._side_tasks: set[asyncio.Task[list[tuple[Partition, int]]]] = set()
        self._assigned: set[Partition] = set()
        self._next_offset: dict[Partition, int] = {}  # where salvage rewinds to
        self._kafka: AIOKafkaConsumer | None = None
        self._paused = False
        self._fatal: BaseException | None = None
        self._last_commit = 0.0
        self._last_tidy = 0.0
        self._fetch: asyncio.Future[dict[TopicPartition, list[Any]]] | None = None
        self._wake = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then shut down gracefully (bounded)."""
        s = self._settings
        kafka = AIOKafkaConsumer(
            **self._kafka_options,
            partition_assignment_strategy=ASSIGNORS,  # range lets Java consumers join the group
            group_id=s.kafka_consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=max(300_000, int(s.shutdown_grace_seconds * 4000)),
        )
        kafka.subscribe([s.kafka_topic_marketplace_orders], listener=_Listener(self))
        try:
            await kafka.start()
        except InconsistentGroupProtocolError:
            await kafka.stop()
            raise self._no_common_strategy() from None
        self._kafka = kafka
        log.info("consumer started", extra={"topic": s.kafka_topic_marketplace_orders, "group": s.kafka_consumer_group})
        try:
            await self._loop(kafka, stop)
        except BaseException:
            # CancelledError included: a cancel that did not come from our owner is a failure too
            log.exception("consumer loop ended by an error; shutting down")
            raise
        finally:
            try:
                await self._shutdown(kafka)
            finally:
                self._kafka = None
                await kafka.stop()
                log.info("consumer stopped")
        if self._fatal is not None:
            raise WorkerCrashed("a batch worker died; see the log for its traceback") from self._fatal

    def _no_common_strategy(self) -> ConfigError:
        return ConfigError(
            f"consumer group {self._settings.kafka_consumer_group}: its other members offer no partition "
            "assignment strategy of ours (roundrobin, range); see the README on Java consumers"
        )

    async def _loop(self, kafka: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set() and self._fatal is None:
                self._wake.clear()  # before reaping: a task finishing from here on wakes the wait
                self._reap()
                try:
                    fetched = await self._fetch_or_wake(kafka)
                except UNPACK_ERRORS as exc:
                    fetched = await self._salvage(kafka, exc)
                except InconsistentGroupProtocolError:
                    raise self._no_common_strategy() from None
                self._iteration(fetched)
                if self._clock() - self._last_commit >= COMMIT_INTERVAL_SECONDS:
                    await self._commit(kafka)
                self._backpressure(kafka)
                if self._clock() - self._last_tidy >= TIDY_INTERVAL_SECONDS:
                    self._last_tidy = self._clock()
                    self._throttle.forget_idle(self._last_tidy)  # memory follows active shops
        finally:
            if self._fetch is not None:
                self._fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, KafkaError):
                    await self._fetch
                self._fetch = None

    async def _fetch_or_wake(self, kafka: AIOKafkaConsumer) -> dict[TopicPartition, list[Any]]:
        """Records from Kafka, or nothing as soon as a batch finishes or a batch falls due.

        A finished batch frees a concurrency slot that a ready batch should take at once,
        not after the fetch's poll timeout: with everything fetched, waiting out the poll
        would cap throughput at max_concurrency batches per poll interval. The fetch is
        not cancelled when the loop wakes early; the next pass picks up its records.
        """
        if self._fetch is None:
            self._fetch = asyncio.ensure_future(
                kafka.getmany(timeout_ms=int(POLL_SECONDS * 1000), max_records=MAX_RECORDS_PER_POLL)
            )
        if not self._fetch.done():
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait(
                    {self._fetch, waker}, timeout=self._poll_timeout(), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waker.cancel()
        if not self._fetch.done():
            return {}
        fetch, self._fetch = self._fetch, None
        result: dict[TopicPartition, list[Any]] = fetch.result()
        return result

    async def _salvage(self, kafka: AIOKafkaConsumer, exc: Exception) -> dict[TopicPartition, list[Any]]:
        """A batch could not be unpacked: take the good records, dead-letter the rest (salvage.py)."""
        log.warning("a fetched batch could not be unpacked; salvaging", extra={"error": repr(exc)})
        salvaged = await salvage(kafka, self._next_offset, max_records=MAX_RECORDS_PER_POLL)
        now = self._clock()
        found: list[tuple[TopicPartition, int, Any, str]] = [
            (tp, m.offset, m, "") for tp, ms in salvaged.records.items() for m in ms
        ]
        found += [(tp, offset, None, detail) for tp, offset, detail in salvaged.undecodable]
        for tp, offset, message, detail in sorted(found, key=lambda f: (f[0], f[1])):  # offsets tracked in order
            partition: Partition = (tp.topic, tp.partition)
            if partition not in self._assigned:
                continue
            if message is not None:
                self._take(partition, offset, message.key, message.value, now)
                continue
            self._offsets.track(partition, offset)
            self._next_offset[partition] = offset + 1
            self._dead_letter_undecodable(
                partition, offset, None, b"", f"{detail} (partition {tp.partition}, offset {offset})"
            )
        return {}

    def _iteration(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        now = self._clock()
        for tp, messages in fetched.items():
            partition: Partition = (tp.topic, tp.partition)
            if partition not in self._assigned:
                continue
            for message in messages:
                self._take(partition, message.offset, message.key, message.value, now)
        for batch in self._batcher.due(now):
            self._enqueue(batch, now)
        self._reap()
        self._schedule(now)

    async def _shutdown(self, kafka: AIOKafkaConsumer) -> None:
        """Stop fetching, finish or abandon in-flight work within the grace period, commit."""
        with contextlib.suppress(Exception):
            kafka.pause(*kafka.assignment())
        tasks: set[asyncio.Task[Any]] = {*self._in_flight.values(), *self._side_tasks}
        if tasks:
            log.info("waiting for in-flight batches", extra={"batches": len(tasks)})
            await self._finish_or_abandon(tasks, self._settings.shutdown_grace_seconds)
        self._reap()
        await self._commit(kafka, force=True)

    async def _finish_or_abandon(self, tasks: set[asyncio.Task[Any]], grace_seconds: float) -> None:
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "abandoned in-flight batches; their records will be redelivered", extra={"batches": len(pending)}
            )
            await asyncio.gather(*pending, return_exceptions=True)

    # -- intake --------------------------------------------------------------------------

    def _take(self, partition: Partition, offset: int, key: bytes | None, value: bytes | None, now: float) -> None:
        self._offsets.track(partition, offset)
        self._next_offset[partition] = offset + 1
        try:
            record = OrderRecord.decode(value or b"")
        except ValueError as exc:  # orjson and pydantic errors are ValueErrors
            self._dead_letter_undecodable(partition, offset, key, value or b"", str(exc))
            return
        full = self._batcher.add(Item(partition, offset, record), now)
        if full is not None:
            self._enqueue(full, now)

    def _dead_letter_undecodable(
        self, partition: Partition, offset: int, key: bytes | None, value: bytes, detail: str
    ) -> None:
        shop = None
        if key is not None and key.startswith(b"shop-"):
            shop = key[5:].decode("utf-8", "replace")
        letter = DeadLetter(
            reason="undecodable_record",
            detail=detail[:500],
            source="consumer",
            failed_at_ms=int(time.time() * 1000),
            shop_id=shop,
            raw_body_b64=base64.b64encode(value).decode(),
        )

        async def send() -> list[tuple[Partition, int]]:
            delay = self._settings.retry_base_seconds
            while True:
                try:
                    await self._dead_letters.send([letter])
                except GatewayError as exc:
                    if not exc.retriable:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._settings.retry_max_seconds)
                    continue
                self._metrics.dead_letters.labels(letter.reason).inc()
                return [(partition, offset)]

        task = asyncio.create_task(send(), name=f"dead-letter-{partition}-{offset}")
        task.add_done_callback(self._on_task_done)
        self._side_tasks.add(task)

    def _enqueue(self, batch: Batch, now: float, *, front: bool = False) -> None:
        if not front:
            self._metrics.batch_age.observe(max(0.0, now - batch.opened_at))
        queue = self._ready.setdefault(batch.shop_id, deque())
        if front:
            queue.appendleft(batch)
        else:
            queue.append(batch)

    # -- scheduling ----------------------------------------------------------------------

    def _schedule(self, now: float) -> None:
        """Start ready batches: one per shop, at most max_concurrency, oldest shops first."""
        if self._kafka is None:
            return
        for shop in list(self._ready):
            if len(self._in_flight) >= self._settings.max_concurrency:
                break
            if shop in self._in_flight or self._not_before.get(shop, 0.0) > now:
                continue
            # a shop out of budget would hold a concurrency slot while it waits; skip it for now
            if self._throttle.delay(shop, now) > 0:
                continue
            queue = self._ready.pop(shop)
            batch = queue.popleft()
            if queue:
                self._ready[shop] = queue  # re-inserted last: round-robin between shops
            self._not_before.pop(shop, None)
            if batch.requeues == 0:
                self._metrics.batch_size.observe(batch.size)
            task = asyncio.create_task(self._worker.process(batch), name=f"batch-{shop}")
            task.add_done_callback(self._on_task_done)
            self._in_flight[shop] = task
            self._batch_of[task] = batch
        self._metrics.batches_in_flight.set(len(self._in_flight))

    def _on_task_done(self, _: asyncio.Task[Any]) -> None:
        self._wake.set()

    def _reap(self) -> None:
        """Account for finished tasks: offsets of durable work, re-queue deferred work."""
        now = self._clock()
        for shop, task in list(self._in_flight.items()):
            if not task.done():
                continue
            del self._in_flight[shop]
            batch = self._batch_of.pop(task)
            if task.cancelled():
                self._requeue(batch, now, 0.0)
                continue
            exc = task.exception()
            if exc is not None:
                log.error("batch worker crashed", exc_info=exc, extra={"shop_id": shop})
                self._fatal = self._fatal or exc
                continue
            result = task.result()
            if result.durable:
                self._offsets.done(batch.offsets())
            else:
                batch.requeues += 1
                self._requeue(batch, now, result.retry_in)
        for side in [t for t in self._side_tasks if t.done()]:
            self._side_tasks.discard(side)
            if side.cancelled():
                continue
            exc = side.exception()
            if exc is not None:
                log.error("dead-letter task crashed", exc_info=exc)
                self._fatal = self._fatal or exc
                continue
            self._offsets.done(side.result())
        self._metrics.batches_in_flight.set(len(self._in_flight))
        self._metrics.records_pending.set(self._offsets.pending)

    def _requeue(self, batch: Batch, now: float, delay: float) -> None:
        kept = batch.without_partitions({p for p in batch.partitions() if p not in self._assigned})
        if kept is None:
            return
        self._enqueue(kept, now, front=True)
        self._not_before[batch.shop_id] = max(self._not_before.get(batch.shop_id, 0.0), now + delay)

    def _poll_timeout(self) -> float:
        deadline = self._batcher.next_deadline()
        if deadline is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, deadline - self._clock()))

    # -- offsets and flow control --------------------------------------------------------

    async def _commit(
        self, kafka: AIOKafkaConsumer, *, force: bool = False, only: set[Partition] | None = None
    ) -> None:
        self._last_commit = self._clock()
        # `only`: partitions being revoked, already gone from _assigned but still ours to commit
        owned = self._assigned if only is None else only
        positions = {p: o for p, o in self._offsets.committable().items() if p in owned}
        if not positions:
            return
        try:
            await kafka.commit({TopicPartition(topic, part): offset for (topic, part), offset in positions.items()})
        except KafkaError as exc:
            self._metrics.commits.labels("failed").inc()
            log.warning("offset commit failed; will retry", extra={"error": repr(exc), "final": force})
            return
        self._offsets.committed(positions)
        self._metrics.commits.labels("ok").inc()

    def _backpressure(self, kafka: AIOKafkaConsumer) -> None:
        pending = self._offsets.pending
        limit = self._settings.consumer_max_pending_records
        if not self._paused and pending >= limit:
            self._paused = True
            log.warning("pausing fetch: too many records pending", extra={"pending": pending})
        elif self._paused and pending <= limit // 2:
            self._paused = False
            kafka.resume(*kafka.assignment())
            log.info("resuming fetch", extra={"pending": pending})
        if self._paused:
            kafka.pause(*kafka.assignment())
        self._metrics.fetch_paused.set(1 if self._paused else 0)
        self._metrics.records_pending.set(pending)

    # -- rebalance -----------------------------------------------------------------------

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
        dropped = self._batcher.drop_partitions(revoked)
        for shop in list(self._ready):
            kept = [b for b in (batch.without_partitions(revoked) for batch in self._ready[shop]) if b is not None]
            dropped += sum(len(b.items) for b in self._ready[shop]) - sum(len(b.items) for b in kept)
            if kept:
                self._ready[shop] = deque(kept)
            else:
                del self._ready[shop]
                self._not_before.pop(shop, None)
        touching = {t for t, b in self._batch_of.items() if b.partitions() & revoked}
        await self._finish_or_abandon(touching, self._settings.shutdown_grace_seconds)
        try:
            self._reap()
            if self._kafka is not None:
                await self._commit(self._kafka, force=True, only=revoked)
        finally:
            self._offsets.forget(revoked)
        log.info(
            "partitions revoked",
            extra={"partitions": sorted(f"{t}-{p}" for t, p in revoked), "dropped_records": dropped},
        )
