"""The fallback outbox (docs/contract.md#ingest-durability): a Postgres table that takes a push when Kafka cannot.

OutboxSink wraps a KafkaSink. A record goes to Kafka first, with most of the response
budget; if Kafka does not acknowledge in time, the record is written to `gateway_outbox`
and the push is still answered 2xx, because Shopee disables subscriptions that fail too
often and never re-sends what it missed. Only when neither takes it: SinkUnavailable (503).

A relay task in every ingest replica drains the outbox to Kafka in insertion order. Rows
are claimed with FOR UPDATE SKIP LOCKED, so replicas relay different rows at once, and are
deleted in the same transaction only after Kafka acknowledged them. A relay that dies
between the acknowledgement and the commit leaves its rows to be sent again: a duplicate
record, which the consumer's idempotent upsert already absorbs.

Once Kafka has failed, new records go straight to the outbox until the relay has emptied
it and Kafka answers again: pushes are not held up by a Kafka timeout each during an
outage, and a shop's newer pushes do not overtake its older ones still in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from service.errors import SinkUnavailable
from service.ingest.metrics import IngestMetrics
from service.ingest.sink import KafkaSink
from service.settings import Settings

log = logging.getLogger(__name__)

RELAY_BATCH = 500
WRITE_GROUP = 500

INSERT = "INSERT INTO gateway_outbox (topic, key, value) VALUES ($1, $2, $3)"
CLAIM = "SELECT id, topic, key, value FROM gateway_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
DELETE = "DELETE FROM gateway_outbox WHERE id = ANY($1::bigint[])"
STATS = "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at)) FROM gateway_outbox"


class OutboxSink:
    name = "outbox"

    def __init__(self, settings: Settings, kafka: KafkaSink, metrics: IngestMetrics) -> None:
        assert settings.database_url is not None
        self._dsn = settings.database_url.get_secret_value()
        self._kafka = kafka
        self._interval = settings.outbox_relay_interval_seconds
        self._reserve = min(settings.ingest_outbox_reserve_seconds, settings.ingest_response_budget_seconds / 2)
        self.metrics = metrics  # the app's: its gauges are served on the app's /metrics
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._relay: asyncio.Task[None] | None = None
        self._kafka_failed = False
        self._queued: list[tuple[str, bytes, bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._kafka.start()
        with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
            await self._get_pool()
        self._relay = asyncio.create_task(self._relay_forever(), name="outbox-relay")

    async def stop(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), 5)
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
        if self._pool is not None:
            await self._pool.close()
        await self._kafka.stop()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4, timeout=2, command_timeout=5)
            return self._pool

    async def send(self, topic: str, key: bytes, value: bytes, *, budget_seconds: float) -> str:
        if not self._kafka_failed:
            try:
                kafka_budget = max(budget_seconds - self._reserve, 0.05)
                return await self._kafka.send(topic, key, value, budget_seconds=kafka_budget)
            except SinkUnavailable as exc:
                self._kafka_failed = True
                log.warning("kafka unavailable; pushes go to the outbox until it recovers", extra={"error": str(exc)})
                budget_seconds = self._reserve
        try:
            async with asyncio.timeout(budget_seconds):
                await self._write(topic, key, value)
        except Exception as exc:  # timeout, connection refused, any Postgres or driver error
            # Neither took it: 503. The next push tries Kafka first again, so an outbox
            # outage while Kafka is back does not keep answering 503.
            self._kafka_failed = False
            raise SinkUnavailable(f"kafka and the outbox are both unavailable ({exc.__class__.__name__})") from exc
        return self.name

    async def _write(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue the row for the single writer and wait until its transaction committed.

        One writer, many rows per transaction: every push that arrives while a commit is
        in flight goes into the next one, so an outage costs one fsync per group of pushes
        rather than one per push, and rows keep their arrival order.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # retrieve the outcome even when the caller has given up waiting, so a failed
        # write is not reported again as "exception never retrieved"
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queued.append((topic, key, value, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name="outbox-writer")
        await asyncio.shield(done)  # a caller giving up does not cancel the others' commit

    async def _write_queued(self) -> None:
        while self._queued:
            group, self._queued = self._queued[:WRITE_GROUP], self._queued[WRITE_GROUP:]
            try:
                pool = await self._get_pool()
                async with pool.acquire() as conn, conn.transaction():
                    await conn.executemany(INSERT, [(topic, key, value) for topic, key, value, _ in group])
            except Exception as exc:
                for *_, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for *_, done in group:
                if not done.done():
                    done.set_result(None)

    async def ready(self) -> bool:
        if await self._kafka.ready():
            return True
        try:
            async with asyncio.timeout(1.5):
                pool = await self._get_pool()
                await pool.fetchval("SELECT 1 FROM gateway_outbox LIMIT 1")
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        return True

    async def relay_once(self) -> int:
        """Move up to RELAY_BATCH rows, oldest first, to Kafka; returns how many."""
        pool = await self._get_pool()
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(CLAIM, RELAY_BATCH)
            if not rows:
                return 0
            producer = await self._kafka.producer()
            futures = [await producer.send(r["topic"], value=bytes(r["value"]), key=bytes(r["key"])) for r in rows]
            await asyncio.gather(*futures)  # every row acknowledged (acks=all) before delete
            await conn.execute(DELETE, [r["id"] for r in rows])
        self.metrics.outbox_relayed.inc(len(rows))
        return len(rows)

    async def _update_stats(self) -> None:
        pool = await self._get_pool()
        row = await pool.fetchrow(STATS)
        depth, age = (row[0], row[1]) if row is not None else (0, 0)
        self.metrics.outbox_depth.set(depth)
        self.metrics.outbox_oldest_age_seconds.set(float(age or 0))

    async def _relay_forever(self) -> None:
        backoff = self._interval
        while True:
            try:
                moved = await self.relay_once()
                await self._update_stats()
                backoff = self._interval
                if moved:
                    log.info("outbox relayed to kafka", extra={"rows": moved})
                    continue
                if self._kafka_failed and await self._kafka.ready():
                    self._kafka_failed = False
                    log.warning("kafka is back and the outbox is empty; sending to kafka again")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Kafka or Postgres down: the rows stay, the next pass tries again.
                log.debug("outbox relay pass failed", extra={"error": f"{exc.__class__.__name__}: {exc}"})
                backoff = min(backoff * 2, 10.0)
            await asyncio.sleep(backoff)
