"""create_app(settings, sink, pipeline) -> the ingest Starlette app.

One request: read the body (bounded in size and time) -> verify the Shopee signature ->
parse -> transform pipeline -> make the record durable -> empty 2xx. Every way out of
the handler is decided here, in one place: 401, 408, 413, 503 or 2xx; never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from service.errors import SinkUnavailable
from service.ingest.metrics import IngestMetrics
from service.ingest.sink import Sink
from service.records import DeadLetter, PushEvent, shop_key
from service.settings import Settings
from service.signing import verify_push
from transforms import Pipeline, Skip

log = logging.getLogger("service.ingest")

Clock = Callable[[], float]

_EMPTY_OK = 200
# A dead letter carries the raw body base64-encoded (4/3 larger); past about 750 KiB it
# would exceed Kafka's default 1 MiB record limit, be refused for good, and turn a push
# that retrying cannot fix into a 503 (or a row that blocks the outbox relay). Keep the
# head of such a body, and its size and digest in the reason detail.
_DEAD_LETTER_BODY_BYTES = 512 * 1024


def _shop_hint(value: Any) -> str | None:
    """The push's shop id for a dead letter's key, only when it looks like one."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return text if text.isascii() and text.isdigit() and len(text) <= 20 else None


class _TooLarge(Exception):
    pass


def create_app(
    settings: Settings,
    sink: Sink,
    pipeline: Pipeline,
    *,
    metrics: IngestMetrics | None = None,
    clock: Clock = time.time,
) -> Starlette:
    settings.require("shopee_callback_url", "shopee_push_key", purpose="the ingest service")
    assert settings.shopee_callback_url is not None and settings.push_key is not None
    push_key = settings.push_key.get_secret_value().encode()
    callback_url = settings.shopee_callback_url
    max_body = settings.ingest_max_body_bytes
    budget = settings.ingest_response_budget_seconds
    orders_topic = settings.kafka_topic_marketplace_orders
    dlq_topic = settings.kafka_topic_dead_letter
    m = metrics if metrics is not None else IngestMetrics()
    # labelled children bound once: a labels() lookup per request is measurable at load
    outcome = {
        name: m.requests.labels(name)
        for name in (
            "forwarded",
            "skipped",
            "dead_lettered",
            "unauthorized",
            "too_large",
            "timeout",
            "disconnected",
            "unavailable",
        )
    }
    per_sink: dict[str, Any] = {}

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def durable(topic: str, key: str, value: bytes, deadline: float) -> None:
        started = time.perf_counter()
        remaining = max(deadline - time.monotonic(), 0.05)
        used = await sink.send(topic, key.encode(), value, budget_seconds=remaining)
        produce_seconds = per_sink.get(used)
        if produce_seconds is None:
            produce_seconds = per_sink[used] = m.produce_seconds.labels(used)
        produce_seconds.observe(time.perf_counter() - started)

    async def dead_letter(
        reason: str, detail: str, body: bytes, deadline: float, shop_id: str | None = None
    ) -> Response:
        if len(body) > _DEAD_LETTER_BODY_BYTES:
            digest = hashlib.sha256(body).hexdigest()
            detail = f"raw body truncated to {_DEAD_LETTER_BODY_BYTES} of {len(body)} bytes (sha256 {digest}); {detail}"
            body = body[:_DEAD_LETTER_BODY_BYTES]
        letter = DeadLetter.for_raw_body(reason, detail, body, int(clock() * 1000), shop_id)
        await durable(dlq_topic, letter.key, letter.encode(), deadline)
        m.dead_letters.labels(reason).inc()
        outcome["dead_lettered"].inc()
        log.warning("signed push kept as dead letter", extra={"reason": reason, "detail": detail[:200]})
        return Response(status_code=_EMPTY_OK)

    async def handle(request: Request, deadline: float) -> Response:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.01)):
                body = await read_body(request)
        except _TooLarge:
            outcome["too_large"].inc()
            return PlainTextResponse("body too large\n", status_code=413)
        except TimeoutError:
            outcome["timeout"].inc()
            return PlainTextResponse("body not received in time\n", status_code=408)
        except ClientDisconnect:
            outcome["disconnected"].inc()
            return Response(status_code=400)

        # Exactly one Authorization header: with several, which one counts would be up to
        # whoever reads them first; Shopee sends one. Spaces around a field value are not
        # part of it (RFC 9110 5.5); h11 drops them but httptools keeps trailing ones.
        authorization = request.headers.getlist("authorization")
        signature = authorization[0].strip(" \t") if len(authorization) == 1 else None
        if not verify_push(push_key, callback_url, body, signature):
            m.signature_failures.inc()
            outcome["unauthorized"].inc()
            log.warning(
                "push signature missing or wrong",
                extra={"has_header": "authorization" in request.headers, "body_bytes": len(body)},
            )
            return PlainTextResponse("invalid signature\n", status_code=401)

        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return await dead_letter("invalid_json", str(exc), body, deadline)
        if not isinstance(parsed, dict):
            return await dead_letter("not_an_object", f"top level is {type(parsed).__name__}", body, deadline)

        event = PushEvent(body=parsed, received_ms=int(clock() * 1000))
        try:
            result = pipeline(event)
        except Exception as exc:
            log.exception("transform failed")
            return await dead_letter("transform_error", f"{exc.__class__.__name__}: {exc}", body, deadline)

        if isinstance(result, Skip):
            if result.dead_letter:
                shop = _shop_hint(event.body.get("shop_id", event.body.get("shopid")))
                return await dead_letter(result.reason, result.detail, body, deadline, shop)
            m.skips.labels(result.reason).inc()
            if result.reason == "unhandled_code":
                m.unhandled_codes.labels(result.detail[:8]).inc()
            outcome["skipped"].inc()
            return Response(status_code=_EMPTY_OK)

        if result.record is None:
            return await dead_letter("no_record", "the pipeline produced no record", body, deadline, result.shop_id)
        record = result.record
        await durable(orders_topic, shop_key(record.shop_id), record.encode(), deadline)
        outcome["forwarded"].inc()
        return Response(status_code=_EMPTY_OK)

    async def shopee_webhook(request: Request) -> Response:
        started = time.perf_counter()
        deadline = time.monotonic() + budget
        try:
            return await handle(request, deadline)
        except SinkUnavailable as exc:
            outcome["unavailable"].inc()
            log.error("push could not be made durable; answering 503", extra={"error": str(exc)})
            return PlainTextResponse("temporarily unavailable\n", status_code=503, headers={"Retry-After": "5"})
        except Exception:
            # Nothing was made durable, so the only honest answer is "try again".
            outcome["unavailable"].inc()
            log.exception("unexpected failure handling a push; answering 503")
            return PlainTextResponse("temporarily unavailable\n", status_code=503)
        finally:
            m.handling_seconds.observe(time.perf_counter() - started)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        ok = await sink.ready()
        detail: list[str] = getattr(sink, "detail", list)()  # lines naming what is down, if the sink says
        text = ("ready\n" if ok else "not ready: pushes cannot be made durable\n") + "".join(f"{d}\n" for d in detail)
        return PlainTextResponse(text, status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sink.start()
        try:
            yield
        finally:
            await sink.stop()

    app = Starlette(
        routes=[
            Route("/webhooks/shopee", shopee_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.metrics = m
    app.state.sink = sink
    return app
