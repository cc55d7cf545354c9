"""`POST /webhooks/shopee`: one push in, one answer out.

Read the body (bounded in size and time) -> verify the Shopee signature -> parse ->
transform pipeline -> make the record durable -> empty 2xx. Every way out is decided
here, in one place: 401, 408, 413, 503 or 2xx; never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from service.errors import SinkUnavailable
from service.ingest.metrics import IngestMetrics
from service.ingest.sink import Sink
from service.pipeline import Pipeline, Skip
from service.records import DeadLetter, PushEvent, shop_key
from service.settings import Settings
from service.signing import verify_push
from service.types import Clock

log = logging.getLogger("service.ingest")

_OUTCOMES = ("forwarded", "skipped", "dead_lettered", "unauthorized", "too_large", "timeout", "disconnected")
_OK = 200  # with an empty body: what Shopee expects


class _TooLarge(Exception):
    pass


class PushHandler:
    """`POST /webhooks/shopee`: one push in, one answer out, within the response budget."""

    def __init__(
        self, settings: Settings, sink: Sink, pipeline: Pipeline, metrics: IngestMetrics, clock: Clock
    ) -> None:
        settings.require("shopee_callback_url", "shopee_push_key", purpose="the ingest service")
        assert settings.shopee_callback_url is not None and settings.push_key is not None
        self._push_key = settings.push_key.get_secret_value().encode()
        self._callback_url = settings.shopee_callback_url
        self._max_body = settings.ingest_max_body_bytes
        self._budget = settings.ingest_response_budget_seconds
        self._orders_topic = settings.kafka_topic_marketplace_orders
        self._dlq_topic = settings.kafka_topic_dead_letter
        self._sink, self._pipeline, self._m, self._clock = sink, pipeline, metrics, clock
        # labelled children bound once: a labels() lookup per request is measurable at load
        self._outcome = {name: metrics.requests.labels(name) for name in _OUTCOMES}
        self._unavailable = metrics.requests.labels("unavailable")
        self._produce_seconds: dict[str, Any] = {}

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        deadline = time.monotonic() + self._budget
        try:
            return await self._process(request, deadline)
        except SinkUnavailable as exc:
            self._unavailable.inc()
            log.error("push could not be made durable; answering 503", extra={"error": str(exc)})
            return PlainTextResponse("temporarily unavailable\n", status_code=503, headers={"Retry-After": "5"})
        except Exception:
            # Nothing was made durable, so the only honest answer is "try again".
            self._unavailable.inc()
            log.exception("unexpected failure handling a push; answering 503")
            return PlainTextResponse("temporarily unavailable\n", status_code=503)
        finally:
            self._m.handling_seconds.observe(time.perf_counter() - started)

    async def _process(self, request: Request, deadline: float) -> Response:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.01)):
                body = await self._read_body(request)
        except _TooLarge:
            return self._answer("too_large", PlainTextResponse("body too large\n", status_code=413))
        except TimeoutError:
            return self._answer("timeout", PlainTextResponse("body not received in time\n", status_code=408))
        except ClientDisconnect:
            return self._answer("disconnected", Response(status_code=400))
        # Exactly one Authorization header: with several, which one counts would be up to
        # whoever reads them first; Shopee sends one. Spaces around a field value are not
        # part of it (RFC 9110 5.5); h11 drops them but httptools keeps trailing ones.
        authorization = request.headers.getlist("authorization")
        signature = authorization[0].strip(" \t") if len(authorization) == 1 else None
        if not verify_push(self._push_key, self._callback_url, body, signature):
            self._m.signature_failures.inc()
            log.warning(
                "push signature missing or wrong",
                extra={"has_header": "authorization" in request.headers, "body_bytes": len(body)},
            )
            return self._answer("unauthorized", PlainTextResponse("invalid signature\n", status_code=401))
        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return await self._dead_letter("invalid_json", str(exc), body, deadline)
        if not isinstance(parsed, dict):
            return await self._dead_letter("not_an_object", f"top level is {type(parsed).__name__}", body, deadline)
        return await self._transform(PushEvent(body=parsed, received_ms=int(self._clock() * 1000)), body, deadline)

    async def _transform(self, event: PushEvent, body: bytes, deadline: float) -> Response:
        routed = self._pipeline.route(event)
        if isinstance(routed, Skip):
            if routed.dead_letter:
                return await self._dead_letter(routed.reason, routed.detail, body, deadline, routed.shop_id)
            self._m.skips.labels(routed.reason).inc()
            if routed.reason == "unhandled_code":
                self._m.unhandled_codes.labels(routed.detail[:8]).inc()
            return self._answer("skipped", Response(status_code=_OK))
        await self._durable(self._orders_topic, shop_key(routed.shop_id), routed.encode(), deadline)
        return self._answer("forwarded", Response(status_code=_OK))

    def _answer(self, outcome: str, response: Response) -> Response:
        self._outcome[outcome].inc()
        return response

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def _durable(self, topic: str, key: str, value: bytes, deadline: float) -> None:
        started = time.perf_counter()
        used = await self._sink.send(topic, key.encode(), value, budget_seconds=max(deadline - time.monotonic(), 0.05))
        produce_seconds = self._produce_seconds.get(used)
        if produce_seconds is None:
            produce_seconds = self._produce_seconds[used] = self._m.produce_seconds.labels(used)
        produce_seconds.observe(time.perf_counter() - started)

    async def _dead_letter(
        self, reason: str, detail: str, body: bytes, deadline: float, shop_id: str | None = None
    ) -> Response:
        letter = DeadLetter.for_raw_body(reason, detail, body, int(self._clock() * 1000), shop_id)
        await self._durable(self._dlq_topic, letter.key, letter.encode(), deadline)
        self._m.dead_letters.labels(reason).inc()
        log.warning("signed push kept as dead letter", extra={"reason": reason, "detail": letter.detail[:200]})
        return self._answer("dead_lettered", Response(status_code=_OK))
