"""bench-ingest's floor: the bare endpoint (bench/bare.py) plus making each body durable in
Kafka the way serve does (KafkaSink: our batcher, acks=all, idempotence), and nothing
else: no signature, no parsing, no transforms, no metrics. Same server stack, flags and
GC settings as `serve`.

Its requests/s over bare's is the most any ingest can reach on this stack while it
acknowledges a push only once Kafka has it; serve's distance from it is what our own
work per push costs.

    python -m bench.kafka_floor --port 8083   (KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_MARKETPLACE_ORDERS)
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from service.ingest.server import SERVER_OPTIONS, tune_gc
from service.ingest.sink import KafkaSink
from service.settings import load_settings

BUDGET_SECONDS = 2.0
KEY_BYTES = 16  # the bodies' last bytes differ from push to push: keys spread over the partitions as serve's do


def create() -> Starlette:
    settings = load_settings()
    sink = KafkaSink(settings)
    topic = settings.kafka_topic_marketplace_orders

    async def webhook(request: Request) -> Response:
        body = await request.body()
        await sink.send(topic, body[-KEY_BYTES:], body, budget_seconds=BUDGET_SECONDS)
        return Response(status_code=204)

    async def readyz(request: Request) -> Response:
        ok = await sink.ready()
        return PlainTextResponse("ready\n" if ok else "not ready\n", status_code=200 if ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sink.start()
        try:
            yield
        finally:
            await sink.stop()

    tune_gc()  # as serve does
    return Starlette(
        routes=[Route("/webhooks/shopee", webhook, methods=["POST"]), Route("/readyz", readyz, methods=["GET"])],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.kafka_floor")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run("bench.kafka_floor:create", factory=True, host="127.0.0.1", port=args.port, workers=1, **SERVER_OPTIONS)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
