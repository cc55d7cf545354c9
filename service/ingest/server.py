"""`python -m service serve`: the ingest app under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging

import uvicorn
from starlette.applications import Starlette

from service.ingest.app import create_app
from service.ingest.metrics import IngestMetrics
from service.ingest.outbox import OutboxSink
from service.ingest.sink import KafkaSink, Sink
from service.kafka_client import check_connection
from service.logs import setup_logging
from service.pipeline import load_pipeline
from service.settings import Settings, load_settings

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 20_000  # container allocations between young-generation collections (default 700)

#: uvicorn's options for `serve` (bench/bare.py runs its ceiling with exactly these)
SERVER_OPTIONS: dict[str, object] = {
    "loop": "uvloop",
    "http": "httptools",
    "access_log": False,
    "log_config": None,
    "timeout_keep_alive": 30,
    "timeout_graceful_shutdown": 10,
    "proxy_headers": False,  # nothing here reads the client address; saves work per request
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="interface to bind (default 0.0.0.0)")  # noqa: S104
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")


def build_sink(settings: Settings, metrics: IngestMetrics) -> Sink:
    """Kafka, wrapped by the Postgres outbox when DATABASE_URL is set (docs/contract.md#ingest-durability)."""
    kafka = KafkaSink(settings, metrics=metrics)
    if settings.database_url is not None and settings.ingest_outbox_enabled:
        return OutboxSink(settings, kafka, metrics)
    return kafka


def build_app(settings: Settings) -> Starlette:
    pipeline = load_pipeline(settings.transform_names)
    metrics = IngestMetrics()
    return create_app(settings, build_sink(settings, metrics), pipeline, metrics=metrics)


def tune_gc() -> None:
    """For a process that has built its app and now serves pushes until it stops."""
    # Everything alive now (modules, the app) lives as long as the process: keep it out of
    # the collector's generations, which cut the ingest's CPU per push by about a sixth.
    gc.collect()
    gc.freeze()
    # Under load every push waiting for Kafka keeps its objects alive, and a young-generation
    # collection every 700 allocations walked them all again: 3% of serve's CPU in a native
    # profile. Cyclic garbage is rare here, so collecting about 30 times less often costs no
    # memory to speak of (docs/benchmarks.md).
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


def app_from_env() -> Starlette:
    """uvicorn factory: each worker process builds its own app from the environment."""
    settings = load_settings()
    setup_logging(settings.log_level)
    app = build_app(settings)
    tune_gc()
    return app


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup_logging(settings.log_level)
    build_app(settings)  # fail fast, in the parent, on any configuration error
    asyncio.run(check_connection(settings))  # and on credentials the broker rejects
    log.info("starting ingest", extra={"host": args.host, "port": args.port, "workers": args.workers})
    uvicorn.run(
        "service.ingest.server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        **SERVER_OPTIONS,  # type: ignore[arg-type]
    )
    return 0
