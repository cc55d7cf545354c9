"""create_app(settings, sink, pipeline) -> the ingest Starlette app.

The push endpoint is PushHandler (handler.py); here are the probes, /metrics, and the
lifespan that starts and stops the sink.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

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
        if await sink.ready():
            return PlainTextResponse("ready\n")
        return PlainTextResponse("not ready: pushes cannot be made durable\n", status_code=503)

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
            Route("/webhooks/shopee", handler.handle, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.metrics = m
    app.state.sink = sink
    return app
