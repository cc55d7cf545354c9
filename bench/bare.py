"""The ceiling of the ingest benchmark: a bare Starlette endpoint that reads the body and
answers an empty 204, under the same server stack and flags as `python -m service serve`
(service.ingest.server.SERVER_OPTIONS, one worker).

    python -m bench.bare --port 8081
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from service.ingest.server import SERVER_OPTIONS


async def webhook(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/webhooks/shopee", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # exactly the options `serve` passes to uvicorn
    uvicorn.run("bench.bare:create_app", factory=True, host=args.host, port=args.port, workers=1, **SERVER_OPTIONS)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
