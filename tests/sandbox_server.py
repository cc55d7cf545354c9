"""The Shopee sandbox's API under uvicorn in a thread, for the consumer's tests; every API call it receives is recorded."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn

from tests.conftest import free_port
from tests.consume_helpers import PARTNER_ID, PARTNER_KEY, seed_shop


@dataclass
class ApiCall:
    at: float  # the sandbox's clock when the request arrived
    path: str
    shop_id: str | None
    order_sns: list[str]
    answered_at: float | None = None  # the sandbox's clock when the answer was sent
    body: bytes = b""  # the answer's body, as the consumer received it


class SandboxServer:
    """service.sandbox's Shopee API under uvicorn in a thread; records every API call it receives."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, **config: Any) -> None:
        from service.sandbox.api import create_sandbox_app
        from service.sandbox.config import SandboxConfig
        from service.sandbox.state import SandboxState

        self.state = SandboxState(SandboxConfig(partner_id=PARTNER_ID, partner_key=PARTNER_KEY, **config))
        self.clock = clock
        self.calls: list[ApiCall] = []
        self._app = create_sandbox_app(self.state)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._record,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                ws="none",
                http="h11",
                loop="asyncio",
                interface="asgi3",
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="sandbox", daemon=True)

    async def _record(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self._app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode())
        sns = [sn for sn in query.get("order_sn_list", [""])[0].split(",") if sn]
        call = ApiCall(self.clock(), scope["path"], query.get("shop_id", [None])[0], sns)
        self.calls.append(call)

        async def keep(message: Any) -> None:
            if message["type"] == "http.response.body":
                call.body += message.get("body", b"")
                if not message.get("more_body"):
                    call.answered_at = self.clock()
            await send(message)

        await self._app(scope, receive, keep)

    def start(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("sandbox did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def order_calls(self, shop_id: str | None = None) -> list[ApiCall]:
        return [
            c for c in self.calls if c.path.endswith("get_order_detail") and (shop_id is None or c.shop_id == shop_id)
        ]

    def details(self, shop_id: str) -> dict[str, Any]:
        """Every order detail the sandbox answered for the shop, by order SN (the latest answer wins)."""
        found: dict[str, Any] = {}
        for call in self.order_calls(shop_id):
            if call.body:
                for detail in orjson.loads(call.body).get("response", {}).get("order_list", []):
                    found[detail["order_sn"]] = detail
        return found

    def refresh_calls(self) -> list[ApiCall]:
        return [c for c in self.calls if c.path.endswith("access_token/get")]

    def set_faults(self, **faults: float) -> None:
        self.state.faults = self.state.faults.updated(faults)

    async def add_shop(self, database_url: str, shop_id: str, *, expired: bool = False) -> None:
        """Create the shop in the sandbox and seed merchant_shopee_config with its tokens."""
        (info,) = self.state.add_shops([int(shop_id)])
        await seed_shop(
            database_url,
            shop_id,
            access_token=info["access_token"],
            refresh_token=info["refresh_token"],
            expires_at=dt.datetime.fromtimestamp(time.time() - 60, dt.UTC) if expired else None,
        )
        if expired:
            self.state.tokens.expire_access(int(shop_id), self.state.now())
