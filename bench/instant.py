"""bench-ingest's decomposition: the real ingest app with a sink that takes every record at
once (no Kafka, nothing kept), under the same server stack, flags and GC settings as `serve`.

Its CPU per answer, against the bare endpoint's and serve's, splits serve's cost into
what HTTP and the push handler cost and what making the record durable in Kafka costs.

    python -m bench.instant --port 8082   (SHOPEE_PUSH_KEY, SHOPEE_CALLBACK_URL from the environment)
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette

from service.ingest.app import create_app
from service.ingest.metrics import IngestMetrics
from service.ingest.server import SERVER_OPTIONS, tune_gc
from service.pipeline import load_pipeline
from service.settings import load_settings


class InstantSink:
    """Takes every record at once and keeps nothing: for measuring, never for serving."""

    name = "kafka"

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def ready(self) -> bool:
        return True

    async def send(self, topic: str, key: bytes, value: bytes, *, budget_seconds: float) -> str:
        return self.name


def create() -> Starlette:
    settings = load_settings()
    metrics = IngestMetrics()
    app = create_app(settings, InstantSink(), load_pipeline(settings.transform_names), metrics=metrics)
    tune_gc()  # as serve does
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instant")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run("bench.instant:create", factory=True, host="127.0.0.1", port=args.port, workers=1, **SERVER_OPTIONS)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
