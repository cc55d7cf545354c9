"""`POST /webhooks/shopee`: one push in, one answer out.

Read the body (bounded in size and time) -> verify the Shopee signature -> parse ->
transform pipeline -> make the record durable -> empty 2xx. Every way out is decided
here, in one place: 401, 408, 413, 503 or 2xx; never a 500.

A plain ASGI callable, not a Starlette endpoint: this is the only route under load, and
Starlette's middleware, routing and Request/Response objects cost more CPU per push than
everything else the ingest does (docs/benchmarks.md). The answers are built once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from service.deadline import Deadlines
from service.errors import SinkUnavailable
from service.ingest.metrics import IngestMetrics
from service.ingest.sink import Sink
from service.pipeline import Pipeline, Skip
from service.records import DeadLetter, PushEvent
from service.settings import Settings
from service.signing import PushVerifier
from service.types import Clock

log = logging.getLogger("service.ingest")

_OUTCOMES = ("forwarded", "skipped", "dead_lettered", "unauthorized", "too_large", "timeout", "disconnected")

Message = dict[str, Any]
Answer = tuple[Message, Message]  # http.response.start, http.response.body


def answer(status: int, text: str = "", headers: tuple[tuple[bytes, bytes], ...] = ()) -> Answer:
    body = text.encode()
    fields = [(b"content-length", str(len(body)).encode()), *headers]
    if body:
        fields.append((b"content-type", b"text/plain; charset=utf-8"))
    return {"type": "http.response.start", "status": status, "headers": fields}, {
        "type": "http.response.body",
        "body": body,
    }


OK = answer(200)  # with an empty body: what Shopee expects
UNAUTHORIZED = answer(401, "invalid signature\n")
TOO_LARGE = answer(413, "body too large\n")
TIMEOUT = answer(408, "body not received in time\n")
DISCONNECTED = answer(400)
UNAVAILABLE = answer(503, "temporarily unavailable\n")
UNAVAILABLE_RETRY = answer(503, "temporarily unavailable\n", ((b"retry-after", b"5"),))


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class PushHandler:
    """The ASGI app of `POST /webhooks/shopee`: one answer within the response budget."""

    def __init__(
        self, settings: Settings, sink: Sink, pipeline: Pipeline, metrics: IngestMetrics, clock: Clock
    ) -> None:
        settings.require("shopee_callback_url", "shopee_push_key", purpose="the ingest service")
        assert settings.shopee_callback_url is not None and settings.push_key is not None
        self._verify = PushVerifier(settings.push_key.get_secret_value().encode(), settings.shopee_callback_url)
        self._max_body = settings.ingest_max_body_bytes
        self._budget = settings.ingest_response_budget_seconds
        self._orders_topic = settings.kafka_topic_marketplace_orders
        self._dlq_topic = settings.kafka_topic_dead_letter
        self._sink, self._pipeline, self._m, self._clock = sink, pipeline, metrics, clock
        # labelled children bound once: a labels() lookup per request is measurable at load
        self._outcome = {name: metrics.requests.labels(name).inc for name in _OUTCOMES}
        self._unavailable = metrics.requests.labels("unavailable")
        self._observe_handling = metrics.handling_seconds.observe
        self._produce_seconds: dict[str, Any] = {}
        self._timeout_at = Deadlines().timeout_at

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        try:
            reply = await self._process(scope, receive, time.monotonic() + self._budget)
        except SinkUnavailable as exc:
            self._unavailable.inc()
            log.error("push could not be made durable; answering 503", extra={"error": str(exc)})
            reply = UNAVAILABLE_RETRY
        except Exception:
            # Nothing was made durable, so the only honest answer is "try again".
            self._unavailable.inc()
            log.exception("unexpected failure handling a push; answering 503")
            reply = UNAVAILABLE
        self._observe_handling(time.perf_counter() - started)
        await send(reply[0])
        await send(reply[1])

    async def _process(self, scope: Message, receive: Any, deadline: float) -> Answer:
        authorization: list[bytes] = []
        declared = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization.append(value)
            elif name == b"content-length":
                declared = value
        try:
            body = await self._read_body(receive, declared, deadline)
        except _TooLarge:
            return self._answer("too_large", TOO_LARGE)
        except TimeoutError:
            return self._answer("timeout", TIMEOUT)
        except _Disconnected:
            return self._answer("disconnected", DISCONNECTED)
        # Exactly one Authorization header: with several, which one counts would be up to
        # whoever reads them first; Shopee sends one. Spaces around a field value are not
        # part of it (RFC 9110 5.5); h11 drops them but httptools keeps trailing ones.
        signature = authorization[0].decode("latin-1").strip(" \t") if len(authorization) == 1 else None
        if not self._verify(body, signature):
            self._m.signature_failures.inc()
            log.warning(
                "push signature missing or wrong",
                extra={"has_header": bool(authorization), "body_bytes": len(body)},
            )
            return self._answer("unauthorized", UNAUTHORIZED)
        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return await self._dead_letter("invalid_json", str(exc), body, deadline)
        if not isinstance(parsed, dict):
            return await self._dead_letter("not_an_object", f"top level is {type(parsed).__name__}", body, deadline)
        return await self._transform(PushEvent(body=parsed, received_ms=int(self._clock() * 1000)), body, deadline)

    async def _transform(self, event: PushEvent, body: bytes, deadline: float) -> Answer:
        routed = self._pipeline.route(event)
        if isinstance(routed, Skip):
            if routed.dead_letter:
                return await self._dead_letter(routed.reason, routed.detail, body, deadline, routed.shop_id)
            self._m.skips.labels(routed.reason).inc()
            if routed.reason == "unhandled_code":
                self._m.unhandled_codes.labels(routed.detail[:8]).inc()
            return self._answer("skipped", OK)
        await self._durable(self._orders_topic, routed.key.encode(), routed.encode(), deadline)
        return self._answer("forwarded", OK)

    def _answer(self, outcome: str, reply: Answer) -> Answer:
        self._outcome[outcome]()
        return reply

    async def _read_body(self, receive: Any, declared: bytes, deadline: float) -> bytes:
        if declared.isdigit() and int(declared) > self._max_body:
            raise _TooLarge
        async with self._timeout_at(deadline):
            message = await receive()
            body: bytes = message.get("body", b"")
            if message["type"] == "http.disconnect":
                raise _Disconnected
            if not message.get("more_body", False):
                if len(body) > self._max_body:
                    raise _TooLarge
                return body
            chunks, size = [body], len(body)
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self._max_body:
                    raise _TooLarge
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)

    async def _durable(self, topic: str, key: bytes, value: bytes, deadline: float) -> None:
        started = time.perf_counter()
        used = await self._sink.send(topic, key, value, budget_seconds=max(deadline - time.monotonic(), 0.05))
        produce_seconds = self._produce_seconds.get(used)
        if produce_seconds is None:
            produce_seconds = self._produce_seconds[used] = self._m.produce_seconds.labels(used).observe
        produce_seconds(time.perf_counter() - started)

    async def _dead_letter(
        self, reason: str, detail: str, body: bytes, deadline: float, shop_id: str | None = None
    ) -> Answer:
        letter = DeadLetter.for_raw_body(reason, detail, body, int(self._clock() * 1000), shop_id)
        await self._durable(self._dlq_topic, letter.key.encode(), letter.encode(), deadline)
        self._m.dead_letters.labels(reason).inc()
        log.warning("signed push kept as dead letter", extra={"reason": reason, "detail": letter.detail[:200]})
        return self._answer("dead_lettered", OK)
