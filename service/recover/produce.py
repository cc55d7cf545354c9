"""Turn a push body into what `POST /webhooks/shopee` would have made of it.

The same transform pipeline and the same sink (Kafka, or the outbox when Kafka is down)
as the ingest, so filters, records and dead letters are identical. The record's value
gains a `source` field (`lost_push` or `reconcile`); the consumer ignores unknown keys,
and `event_id` is computed by the pipeline exactly as for a push, so the same push
recovered twice, or recovered after it did arrive, is one event.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from service.ingest.sink import Sink
from service.pipeline import Pipeline, Skip
from service.records import DeadLetter, OrderRecord, PushEvent, shop_key
from service.settings import Settings

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    FORWARDED = "forwarded"
    SKIPPED = "skipped"
    DEAD_LETTERED = "dead_lettered"


def encode_with_source(record: OrderRecord, source: str) -> bytes:
    return orjson.dumps({**record.as_dict(), "source": source})


class Producer:
    """Runs bodies through the pipeline and makes the result durable; SinkUnavailable
    propagates, so a caller never acknowledges anything that is not durable."""

    def __init__(
        self, settings: Settings, sink: Sink, pipeline: Pipeline, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._sink = sink
        self._pipeline = pipeline
        self._clock = clock
        self._orders_topic = settings.kafka_topic_marketplace_orders
        self._dlq_topic = settings.kafka_topic_dead_letter
        self._budget = settings.recover_produce_timeout_seconds

    async def submit(self, body: dict[str, Any], source: str) -> Outcome:
        """One push body (the parsed JSON object of SPEC 3.3)."""
        routed = self._pipeline.route(PushEvent(body=body, received_ms=int(self._clock() * 1000)))
        if isinstance(routed, Skip):
            if routed.dead_letter:
                return await self.dead_letter(routed.reason, routed.detail, body, source, routed.shop_id)
            return Outcome.SKIPPED
        await self._send(self._orders_topic, shop_key(routed.shop_id), encode_with_source(routed, source))
        return Outcome.FORWARDED

    async def dead_letter(
        self, reason: str, detail: str, body: dict[str, Any] | bytes, source: str, shop_id: str | None = None
    ) -> Outcome:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        letter = DeadLetter.for_raw_body(reason, detail, raw, int(self._clock() * 1000), shop_id)
        letter = letter.model_copy(update={"source": source})
        await self._send(self._dlq_topic, letter.key, letter.encode())
        log.warning("recovered push kept as dead letter", extra={"reason": reason, "source": source})
        return Outcome.DEAD_LETTERED

    async def _send(self, topic: str, key: str, value: bytes) -> None:
        await self._sink.send(topic, key.encode(), value, budget_seconds=self._budget)
