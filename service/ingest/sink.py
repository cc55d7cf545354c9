"""Makes a record durable: Kafka, acknowledged by all in-sync replicas.

A sink answers only once the record is durable, or raises SinkUnavailable when it could
not be made durable within the time it was given. The fallback outbox (outbox.py) wraps a
KafkaSink with the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from service.deadline import Deadlines
from service.deps import describe
from service.errors import SinkUnavailable
from service.ingest.batcher import Batcher
from service.ingest.metrics import IngestMetrics
from service.ingest.partitions import KeyPartitions
from service.kafka_client import client_options
from service.logs import Outage
from service.settings import Settings

log = logging.getLogger(__name__)

CONNECT_BACKOFF_MAX_SECONDS = 10.0
BATCHED_MAX_BYTES = 16_384  # order records are ~300 bytes; bigger ones are sent alone
STOP_SECONDS = 5.0


class Sink(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(self, topic: str, key: bytes, value: bytes, *, budget_seconds: float) -> str:
        """Make the record durable within `budget_seconds`; returns the sink's name."""
        ...

    async def ready(self) -> bool: ...


def make_producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    options: dict[str, object] = {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": True,
        # no linger: batches still form while a request is in flight, and linger_ms=1
        # measured a worse p99 at moderate rates (aiokafka wakes its sender late)
        "linger_ms": 0,
        "request_timeout_ms": 15_000,
        "retry_backoff_ms": 100,
        "max_batch_size": 65_536,
        "client_id": "gateway-ingest",
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


class KafkaSink:
    name = "kafka"

    def __init__(
        self, settings: Settings, producer: AIOKafkaProducer | None = None, metrics: IngestMetrics | None = None
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._started = False
        self._tried = False
        self._start_lock = asyncio.Lock()
        self._connector: asyncio.Task[None] | None = None
        self._partitions = KeyPartitions()
        self._batcher: Batcher | None = None
        self._deadlines = Deadlines()
        self.outage = Outage("kafka", log, on_change=dependency_gauge(metrics, "kafka"))

    async def start(self) -> None:
        """Return at once and connect in the background: the service binds its port now and
        reports unready until Kafka answers, so a Kafka outage never stops the ingest."""
        self._connector = asyncio.create_task(self._connect(), name="kafka-connect")

    async def _connect(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._ensure_started()
            except KafkaError as exc:
                self.outage.down(describe(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, CONNECT_BACKOFF_MAX_SECONDS)
            else:
                self.outage.up()
                return

    async def _ensure_started(self) -> AIOKafkaProducer:
        if self._producer is not None and self._started:
            return self._producer
        async with self._start_lock:
            if self._producer is None or not self._started:
                if self._producer is None or self._tried:
                    if self._producer is not None:
                        await self._producer.stop()
                    self._producer = make_producer(self._settings)
                self._tried = True
                try:
                    await self._producer.start()
                except BaseException:
                    await self._producer.stop()
                    raise
                self._started = True
                self._batcher = Batcher(self._producer, self._deadlines)  # made here, in the loop that uses it
            return self._producer

    async def producer(self) -> AIOKafkaProducer:
        """The started producer (started now if Kafka was down until now)."""
        return await self._ensure_started()

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._batcher is not None:
            batcher, self._batcher = self._batcher, None
            await batcher.close()
        if self._producer is not None:
            producer, self._producer, self._started = self._producer, None, False
            try:
                # with the broker gone, stop() would wait to flush unsent records for good
                async with asyncio.timeout(STOP_SECONDS):
                    await producer.stop()
            except TimeoutError:
                log.warning("kafka producer did not stop in time; unsent records abandoned (not acknowledged)")

    async def send(self, topic: str, key: bytes, value: bytes, *, budget_seconds: float) -> str:
        deadline = time.monotonic() + budget_seconds
        try:
            # no batcher: not connected yet, or a record big enough to be refused, sent alone
            batcher = self._batcher if self._started and len(value) <= BATCHED_MAX_BYTES else None
            partition = self._partitions.of(key, batcher.partitions(topic)) if batcher is not None else None
            if batcher is not None and partition is not None:
                # the common case: wait for our batch's acknowledgement, failed at the deadline
                await batcher.add(topic, partition, key, value, deadline)
            else:
                async with self._deadlines.timeout_at(deadline):
                    await self._send_alone(topic, key, value)
        except TimeoutError as exc:
            self.outage.down(f"no acknowledgement within {budget_seconds:.2f}s")
            raise SinkUnavailable(f"kafka did not acknowledge within {budget_seconds:.2f}s") from exc
        except KafkaError as exc:
            self.outage.down(describe(exc))
            raise SinkUnavailable(f"kafka refused the record: {exc.__class__.__name__}") from exc
        self.outage.up()
        return self.name

    async def _send_alone(self, topic: str, key: bytes, value: bytes) -> None:
        """Start the producer if need be, then send one record with aiokafka's own send:
        when the topic has no metadata yet (aiokafka waits for it), or for a record big
        enough to be refused, which must never fail the others' batch."""
        producer = await self._ensure_started()
        await producer.send_and_wait(topic, value=value, key=key)

    async def ready(self) -> bool:
        if self._producer is None or not self._started:
            return False  # the background connect is still trying
        try:
            async with asyncio.timeout(1.5):
                await self._producer.client.fetch_all_metadata()
        except TimeoutError:
            self.outage.down("metadata request timed out")
            return False
        except KafkaError as exc:
            self.outage.down(describe(exc))
            return False
        self.outage.up()
        return True

    def detail(self) -> list[str]:
        """Lines for /readyz: what is down and why."""
        return [f"kafka: unavailable ({self.outage.error})"] if self.outage.is_down else []


def dependency_gauge(metrics: IngestMetrics | None, dependency: str) -> Callable[[bool], None] | None:
    if metrics is None:
        return None
    gauge = metrics.dependency_up.labels(dependency)
    return lambda up: gauge.set(1 if up else 0)
