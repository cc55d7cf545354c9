"""create_app(settings, sink, pipeline) -> the ingest app.

The push endpoint is PushHandler (handler.py), reached before Starlette's middleware and
router; here are the probes, /metrics, and the lifespan that starts and stops the sink.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from service.ingest.handler import PushHandler
from service.ingest.metrics import IngestMetrics
from service.ingest.sink import Sink
from service.pipeline import Pipeline
from service.settings import Settings
from service.types import Clock

PUSH_PATH = "/webhooks/shopee"


class IngestApp(Starlette):
    """Starlette, except that `POST /webhooks/shopee` goes straight to the push handler."""

    def __init__(self, push: PushHandler, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._push = push

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PUSH_PATH:
            await self._push(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    sink: Sink,
    pipeline: Pipeline,
    *,
    metrics: IngestMetrics | None = None,
    clock: Clock = time.time,
) -> Starlette:
    m = metrics if metrics is not None else IngestMetrics()
    handler = PushHandler(settings, sink, pipeline, m, clock)

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

    app = IngestApp(
        handler,
        routes=[
            Route(PUSH_PATH, handler, methods=["POST"]),  # other methods: 405 from the router
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.metrics = m
    app.state.sink = sink
    return app
