"""Records of concurrent pushes, gathered into one Kafka batch per partition.

aiokafka's `send()` costs tens of microseconds of Python per record (metadata wait,
partitioner, accumulator, one future and one RecordMetadata per record), more than the
rest of a push. Here a push appends its record to the open batch of its partition and
waits on a future of its own; one task per partition hands each batch to the producer
(`send_batch`, acks=all and idempotence as configured) and, when Kafka acknowledges the
batch, resolves every push in it, then hands over the next. A batch holds the records
that arrived while the partition's previous batch was in flight (or, when none was, in
the same turn of the event loop): batches grow with the load, and nothing lingers.

Order: one task per partition submits its batches in the order they were opened, so
records of one shop (one key, one partition) reach Kafka in the order they arrived.

A batch fails or succeeds as a whole, so the caller sends big records (dead letters of
large bodies, which the broker may refuse for their size) on their own (KafkaSink). A
batch whose pushes have all given up by the time its turn comes (past their deadline:
answered from the outbox, or 503) is dropped rather than sent: in an outage the records
queued behind a batch that waits for the broker would otherwise reach Kafka a second time
after the outbox relayed them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from service.deadline import Deadlines, Entry

Waiters = list["asyncio.Future[None]"]


class _Batch:
    """Records for one partition and their pushes' futures. It is an entry of Deadlines of
    its own, armed for its earliest pending push: one expiry per batch rather than one per
    push (each cost a sweep at its deadline)."""

    __slots__ = ("_bucket", "_deadlines", "armed", "builder", "deadline", "deadlines", "waiters")

    def __init__(self, builder: Any, deadlines: Deadlines) -> None:
        self.builder = builder
        self.waiters: Waiters = []
        self.deadlines: list[float] = []  # each push's, in the order of waiters
        self.deadline = 0.0  # when it is armed: the earliest deadline of a push still waiting
        self.armed = False
        self._deadlines = deadlines
        self._bucket: set[Entry] = set()  # where Deadlines keeps it while armed

    def wait(self, future: asyncio.Future[None], deadline: float) -> None:
        self.waiters.append(future)
        self.deadlines.append(deadline)
        if not self.armed:
            self.deadline, self.armed = deadline, True
            self._bucket = self._deadlines.add(self)

    def fire(self) -> None:
        """Called by Deadlines once self.deadline has passed: fail the pushes whose own
        deadline has passed, and arm again for the next one still waiting."""
        now, self.armed = time.monotonic(), False
        for waiter, deadline in zip(self.waiters, self.deadlines, strict=True):
            if waiter.done():
                continue
            if deadline <= now:
                waiter.set_exception(TimeoutError())
            elif not self.armed or deadline < self.deadline:
                self.deadline, self.armed = deadline, True
        if self.armed:
            self._bucket = self._deadlines.add(self)

    def settle(self, error: BaseException | None) -> None:
        """Acknowledged (error None), failed or dropped: every push still waiting learns it,
        and the batch leaves Deadlines and lets go of what it held now, not at its expiry."""
        for waiter in self.waiters:
            if not waiter.done():  # a push that gave up (its deadline passed) has no one waiting
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
        self.waiters, self.deadlines, self.builder = [], [], None
        if self.armed:
            self._bucket.discard(self)
            self.armed = False


class Batcher:
    """One producer's open batches, per (topic, partition); made in the loop that uses it."""

    def __init__(self, producer: AIOKafkaProducer, deadlines: Deadlines) -> None:
        self.producer = producer
        self._deadlines = deadlines
        # remembered: asyncio.get_running_loop() costs a getpid() system call on Python 3.11
        self._loop = asyncio.get_running_loop()
        self._open: dict[tuple[str, int], deque[_Batch]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # aiokafka builds a new set for every partitions_for_topic(); ours is kept until
        # the producer's next metadata update
        self._partitions: dict[str, set[int]] = {}
        producer.client.cluster.add_listener(self._forget_partitions)

    def partitions(self, topic: str) -> set[int] | None:
        """The topic's partitions as of the producer's last metadata (None: not known yet)."""
        known = self._partitions.get(topic)
        if known is None:
            known = self.producer.client.cluster.partitions_for_topic(topic)
            if known:
                self._partitions[topic] = known
        return known

    def _forget_partitions(self, _cluster: object) -> None:
        self._partitions.clear()

    async def close(self) -> None:
        """Stop handing batches over; pushes still waiting in an open batch fail (not acknowledged)."""
        self.producer.client.cluster.remove_listener(self._forget_partitions)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def add(self, topic: str, partition: int, key: bytes, value: bytes, deadline: float) -> asyncio.Future[None]:
        """Append a record; the future is done when Kafka acknowledged it, or failed with
        KafkaError, or with TimeoutError once `deadline` (time.monotonic()) has passed (never
        before it, at most Deadlines' 2 * TICK after it)."""
        tp = (topic, partition)
        batches = self._open.get(tp)
        if batches is None:
            batches = self._open[tp] = deque()
            task = self._loop.create_task(self._submit(tp, batches), name=f"kafka-batch-{tp}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not batches or batches[-1].builder.append(timestamp=None, key=key, value=value) is None:
            batches.append(_Batch(self.producer.create_batch(), self._deadlines))  # an empty batch takes any one record
            batches[-1].builder.append(timestamp=None, key=key, value=value)
        waiter: asyncio.Future[None] = self._loop.create_future()
        batches[-1].wait(waiter, deadline)
        return waiter

    async def _submit(self, tp: tuple[str, int], batches: deque[_Batch]) -> None:
        try:
            while batches:
                batch = batches.popleft()
                if all(waiter.done() for waiter in batch.waiters):
                    batch.settle(None)
                    continue  # every push in it gave up and was answered otherwise: sending would duplicate
                error: BaseException | None = None
                try:
                    acknowledged = await self.producer.send_batch(batch.builder, tp[0], partition=tp[1])
                    # One batch of ours in flight per partition: the records arriving
                    # meanwhile fill the next batch, and by the time this one is
                    # acknowledged aiokafka has drained it, so send_batch never waits for
                    # a drain (an asyncio.wait per batch).
                    await acknowledged
                except asyncio.CancelledError:
                    batches.appendleft(batch)  # its pushes fail below: not acknowledged
                    raise
                except Exception as exc:  # every waiter learns why; the next batch is tried all the same
                    error = exc if isinstance(exc, KafkaError) else KafkaError(repr(exc))
                batch.settle(error)
        finally:
            del self._open[tp]
            for batch in batches:  # cancelled (shutdown): nothing more will be submitted
                batch.settle(KafkaError("the producer stopped"))
