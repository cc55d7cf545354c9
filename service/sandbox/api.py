"""The simulated Shopee Open Platform API (docs/contract.md#api-calls), as a Starlette app.

Every `/api/v2/...` call goes through the same gate, in this order: injected latency,
call counted in the stats, injected bare HTTP 503, partner_id, timestamp (within 5 min
of the sandbox clock), `sign` (over access_token and shop_id for shop-level calls), the
shop (unknown only with strict shops), the access token, the per-shop rate limit (order
calls only; rejected calls do not use up the window), injected `error_server`, then the
handler. Faults apply to every /api/v2 endpoint, the rate limit only to the order calls
(get_order_detail, get_order_list in order_list.py).

Errors use Shopee's envelope `{"request_id", "error", "message"}` with these HTTP codes:
error_param 400, error_sign / error_auth / invalid_acceess_token / error_shop 403,
error_not_found 404, error_too_many_request 429 (with Retry-After), error_server 500.
A bare 503 has a text body, like a proxy in front of Shopee.

Unknown order SNs in get_order_detail: the known ones come back in
`response.order_list`, the unknown ones are listed (SNs only) in the top-level `warning`
list; when none of the SNs is known the answer is HTTP 404 `error_not_found` (with the
same `warning`). With auto-orders on, only SNs with the unknown prefix are unknown.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from service.sandbox import control
from service.sandbox.config import (
    AUTH_REFRESH_PATH,
    CONFIRM_LOST_PUSH_PATH,
    LOST_PUSH_PATH,
    MAX_ORDER_SNS,
    ORDER_DETAIL_PATH,
    ORDER_LIST_PATH,
    TIMESTAMP_TOLERANCE_SECONDS,
    Clock,
    SandboxConfig,
    Sleep,
    system_clock,
)
from service.sandbox.orders import order_detail
from service.sandbox.state import SandboxState
from service.sandbox.tokens import AccessCheck, RefreshError
from service.signing import api_sign, constant_time_equal

_STATUS = {
    "error_param": 400,
    "error_sign": 403,
    "error_auth": 403,
    "invalid_acceess_token": 403,
    "error_shop": 403,
    "error_not_found": 404,
    "error_too_many_request": 429,
    "error_server": 500,
}


class ApiError(Exception):
    def __init__(
        self, error: str, message: str, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


@dataclass(frozen=True, slots=True)
class Call:
    """An authenticated API call: who made it, and when (sandbox clock)."""

    now: float
    shop_id: int | None


Handler = Callable[[Request, SandboxState, Call], Awaitable[dict[str, Any]]]


def envelope(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    full = {"request_id": uuid.uuid4().hex, "error": "", "message": "", **body}
    return Response(orjson.dumps(full), status_code=status, media_type="application/json", headers=headers)


def _int_param(request: Request, name: str) -> int:
    raw = request.query_params.get(name, "")
    try:
        return int(raw)
    except ValueError:
        raise ApiError("error_param", f"There is no {name} in query." if not raw else f"Invalid {name}.") from None


def _authenticate(request: Request, state: SandboxState, path: str, now: float, shop_level: bool) -> int | None:
    partner_id = _int_param(request, "partner_id")
    if partner_id != state.config.partner_id:
        raise ApiError("error_param", "Invalid partner_id.")
    timestamp = _int_param(request, "timestamp")
    if abs(now - timestamp) > TIMESTAMP_TOLERANCE_SECONDS:
        raise ApiError("error_param", "Invalid timestamp.")
    sign = request.query_params.get("sign", "")
    if not sign:
        raise ApiError("error_param", "There is no sign in query.")
    key = state.config.key_bytes
    if not shop_level:
        if not constant_time_equal(sign, api_sign(key, partner_id, path, timestamp)):
            raise ApiError("error_sign", "Wrong sign.")
        return None
    shop_id = _int_param(request, "shop_id")
    access_token = request.query_params.get("access_token", "")
    if not access_token:
        raise ApiError("error_param", "There is no access_token in query.")
    if not constant_time_equal(sign, api_sign(key, partner_id, path, timestamp, access_token, shop_id)):
        raise ApiError("error_sign", "Wrong sign.")
    if not state.shop_exists(shop_id):
        raise ApiError("error_shop", "Invalid shop_id.")
    check = state.tokens.check_access(shop_id, access_token, now)
    if check is AccessCheck.EXPIRED:
        raise ApiError("invalid_acceess_token", "Invalid access_token.")
    if check is AccessCheck.UNKNOWN:
        raise ApiError("error_auth", "Invalid access_token.")
    return shop_id


def _shop_hint(request: Request) -> int | None:
    try:
        return int(request.query_params.get("shop_id", ""))
    except ValueError:
        return None


def endpoint(
    path: str, handler: Handler, *, shop_level: bool, rate_limited: bool
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        state: SandboxState = request.app.state.sandbox
        faults = state.faults
        if faults.latency_ms > 0:
            await state.sleep(faults.latency_ms / 1000)
        now = state.now()
        hint = _shop_hint(request) if shop_level else None
        state.stats.call(path, hint, now)
        if state.roll(faults.unavailable_rate):
            state.stats.error("http_503", hint)
            return PlainTextResponse("Service Unavailable", status_code=503)
        try:
            shop_id = _authenticate(request, state, path, now, shop_level)
            if rate_limited and shop_id is not None:
                retry_after = state.admit(shop_id, now)
                if retry_after is not None:
                    raise ApiError("error_too_many_request", "too many requests", {"Retry-After": str(retry_after)})
            if state.roll(faults.error_rate):
                raise ApiError("error_server", "Something wrong. Please try later.")
            return envelope(await handler(request, state, Call(now, shop_id)))
        except ApiError as exc:
            state.stats.error(exc.error, hint)
            body = {"error": exc.error, "message": exc.message, **exc.extra}
            return envelope(body, _STATUS.get(exc.error, 400), exc.headers)

    return run


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise ApiError("error_param", "Invalid JSON body.") from None
    if not isinstance(body, dict):
        raise ApiError("error_param", "Invalid JSON body.")
    return body


async def get_order_detail(request: Request, state: SandboxState, call: Call) -> dict[str, Any]:
    assert call.shop_id is not None
    raw = request.query_params.get("order_sn_list", "")
    sns = [sn.strip() for sn in raw.split(",") if sn.strip()]
    if not sns:
        raise ApiError("error_param", "order_sn_list is required.")
    if len(sns) > MAX_ORDER_SNS:
        raise ApiError("error_param", f"order_sn_list should contain at most {MAX_ORDER_SNS} order_sn.")
    wanted = {f.strip() for f in request.query_params.get("response_optional_fields", "").split(",") if f.strip()}
    found, missing = [], []
    for sn in dict.fromkeys(sns):
        order = state.orders.lookup(call.shop_id, sn)
        if order is None:
            missing.append(sn)
        else:
            found.append(order_detail(order, wanted))
    if not found:
        raise ApiError("error_not_found", "order_sn not found.", extra={"warning": missing})
    state.stats.served(call.shop_id, len(found))
    body: dict[str, Any] = {"response": {"order_list": found}}
    if missing:
        body["warning"] = missing
    return body


async def refresh_access_token(request: Request, state: SandboxState, call: Call) -> dict[str, Any]:
    body = await _json_body(request)
    refresh_token, shop_id, partner_id = body.get("refresh_token"), body.get("shop_id"), body.get("partner_id")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ApiError("error_param", "refresh_token is required.")
    if isinstance(shop_id, bool) or not isinstance(shop_id, int):
        raise ApiError("error_param", "shop_id is required and must be an integer.")
    if partner_id != state.config.partner_id:
        raise ApiError("error_param", "Invalid partner_id.")
    if not state.shop_exists(shop_id):
        raise ApiError("error_shop", "Invalid shop_id.")
    try:
        pair = state.tokens.refresh(shop_id, refresh_token, call.now)
    except RefreshError as exc:
        raise ApiError("error_param", str(exc)) from None
    state.stats.refreshed(shop_id)
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "expire_in": int(pair.access_expires_at - call.now),
        "partner_id": state.config.partner_id,
        "shop_id": shop_id,
    }


async def get_lost_push_message(request: Request, state: SandboxState, call: Call) -> dict[str, Any]:
    page, has_next, last_id = state.lost_push_page(call.now)
    items = [{"shop_id": p.shop_id, "code": p.code, "timestamp": p.timestamp, "data": p.data} for p in page]
    return {"response": {"push_message_list": items, "has_next_page": has_next, "last_message_id": last_id}}


async def confirm_lost_push(request: Request, state: SandboxState, call: Call) -> dict[str, Any]:
    last = (await _json_body(request)).get("last_message_id")
    if isinstance(last, bool) or not isinstance(last, int) or last < 0:
        raise ApiError("error_param", "last_message_id is required and must be an integer.")
    state.confirm_lost_pushes(last)
    return {}


def create_sandbox_app(
    state_or_config: SandboxState | SandboxConfig, clock: Clock | None = None, sleep: Sleep | None = None
) -> Starlette:
    """The sandbox Shopee as an ASGI app; pass a SandboxState to share it with the caller."""
    if isinstance(state_or_config, SandboxState):
        state = state_or_config
    else:
        state = SandboxState(state_or_config, clock or system_clock, sleep or asyncio.sleep)
    from service.sandbox.order_list import get_order_list  # it builds on this module's ApiError

    routes = [
        Route(ORDER_LIST_PATH, endpoint(ORDER_LIST_PATH, get_order_list, shop_level=True, rate_limited=True)),
        Route(ORDER_DETAIL_PATH, endpoint(ORDER_DETAIL_PATH, get_order_detail, shop_level=True, rate_limited=True)),
        Route(
            AUTH_REFRESH_PATH,
            endpoint(AUTH_REFRESH_PATH, refresh_access_token, shop_level=False, rate_limited=False),
            methods=["POST"],
        ),
        Route(LOST_PUSH_PATH, endpoint(LOST_PUSH_PATH, get_lost_push_message, shop_level=False, rate_limited=False)),
        Route(
            CONFIRM_LOST_PUSH_PATH,
            endpoint(CONFIRM_LOST_PUSH_PATH, confirm_lost_push, shop_level=False, rate_limited=False),
            methods=["POST"],
        ),
        *control.routes(),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = state
    return app
