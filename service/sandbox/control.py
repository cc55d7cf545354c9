"""The sandbox's own endpoints (`/sandbox/...`) for tests, benchmarks and local runs.

    GET  /healthz                             {"ok": true}
    GET  /sandbox/shops                       {"shops": [shop, ...]}
    POST /sandbox/shops                       {"shop_ids": [..]} or {"count": N, "shop_id_base": B} or
                                              {"shops": [{shop_id, access_token?, refresh_token?}]}
                                              (given tokens replace the shop's current pair)
    POST /sandbox/shops/{shop_id}/expire-token  the shop's access token expires now
    POST /sandbox/orders                      {"orders": [{shop_id, order_sn, order_status, update_time,
                                               create_time?}]} or one such object
    POST /sandbox/lost-pushes                 {"pushes": [{shop_id, code, timestamp, data}]}
    GET  /sandbox/faults, POST /sandbox/faults  read / change faults (partial JSON)
    GET  /sandbox/stats, POST /sandbox/reset-stats

A shop is {shop_id, merchant_id, partner_id, access_token, refresh_token,
access_token_expires_at, refresh_token_expires_at} (times in unix seconds).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.sandbox.state import SandboxState


class BadRequest(Exception):
    pass


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer") from None


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name} must be a non-empty string")
    return value


Handler = Callable[[Request, SandboxState, Any], Awaitable[Any]]


def _route(path: str, handler: Handler, method: str) -> Route:
    async def run(request: Request) -> Response:
        state: SandboxState = request.app.state.sandbox
        try:
            body: Any = None
            if method == "POST":
                raw = await request.body()
                body = orjson.loads(raw) if raw.strip() else {}
            return _json(await handler(request, state, body))
        except orjson.JSONDecodeError:
            return _json({"error": "body is not JSON"}, 400)
        except BadRequest as exc:
            return _json({"error": str(exc)}, 400)

    return Route(path, run, methods=[method])


async def healthz(request: Request, state: SandboxState, body: Any) -> Any:
    return {"ok": True}


async def list_shops(request: Request, state: SandboxState, body: Any) -> Any:
    return {"shops": state.all_shops()}


async def add_shops(request: Request, state: SandboxState, body: Any) -> Any:
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    if "shops" in body:
        if not isinstance(body["shops"], list) or not all(isinstance(s, dict) for s in body["shops"]):
            raise BadRequest("shops must be a list of objects")
        infos = []
        for shop in body["shops"]:
            shop_id = _int(shop.get("shop_id"), "shop_id")
            if "access_token" in shop or "refresh_token" in shop:
                access, refresh = (
                    _str(shop.get("access_token"), "access_token"),
                    _str(shop.get("refresh_token"), "refresh_token"),
                )
                infos.append(state.shop_info(state.tokens.set_tokens(shop_id, access, refresh, state.now())))
            else:
                infos.extend(state.add_shops([shop_id]))
        return {"shops": infos}
    if "shop_ids" in body:
        if not isinstance(body["shop_ids"], list):
            raise BadRequest("shop_ids must be a list")
        shop_ids = [_int(s, "shop_id") for s in body["shop_ids"]]
    else:
        count, base = _int(body.get("count", 1), "count"), _int(body.get("shop_id_base", 100000), "shop_id_base")
        shop_ids = list(range(base, base + count))
    return {"shops": state.add_shops(shop_ids)}


async def expire_token(request: Request, state: SandboxState, body: Any) -> Any:
    shop_id = _int(request.path_params["shop_id"], "shop_id")
    if not state.shop_exists(shop_id):
        raise BadRequest(f"unknown shop {shop_id}")
    state.tokens.expire_access(shop_id, state.now())
    return state.shop_info(state.tokens.current(shop_id))


async def register_orders(request: Request, state: SandboxState, body: Any) -> Any:
    orders = body.get("orders", [body]) if isinstance(body, dict) else None
    if not isinstance(orders, list):
        raise BadRequest("expected {'orders': [...]} or one order object")
    for order in orders:
        if not isinstance(order, dict):
            raise BadRequest("each order must be an object")
        create_time = order.get("create_time")
        state.orders.register(
            _int(order.get("shop_id"), "shop_id"),
            _str(order.get("order_sn"), "order_sn"),
            _str(order.get("order_status"), "order_status"),
            _int(order.get("update_time"), "update_time"),
            None if create_time is None else _int(create_time, "create_time"),
        )
    return {"registered": len(orders), "known_orders": len(state.orders)}


async def add_lost_pushes(request: Request, state: SandboxState, body: Any) -> Any:
    pushes = body.get("pushes") if isinstance(body, dict) else None
    if not isinstance(pushes, list):
        raise BadRequest("expected {'pushes': [...]}")
    ids = []
    for push in pushes:
        if not isinstance(push, dict):
            raise BadRequest("each push must be an object")
        data = push.get("data")
        data_str = data if isinstance(data, str) else orjson.dumps(data).decode()
        ids.append(
            state.add_lost_push(
                _int(push.get("shop_id"), "shop_id"),
                _int(push.get("code", 3), "code"),
                _int(push.get("timestamp"), "timestamp"),
                data_str,
            )
        )
    return {"stored": len(ids), "message_ids": ids}


async def get_faults(request: Request, state: SandboxState, body: Any) -> Any:
    return state.faults.as_dict()


async def set_faults(request: Request, state: SandboxState, body: Any) -> Any:
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    try:
        state.faults = state.faults.updated(body)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return state.faults.as_dict()


async def get_stats(request: Request, state: SandboxState, body: Any) -> Any:
    snapshot = state.stats.snapshot(state.now())
    snapshot["lost_pushes_pending"] = state.lost_push_count()
    snapshot["known_orders"] = len(state.orders)
    return snapshot


async def reset_stats(request: Request, state: SandboxState, body: Any) -> Any:
    state.stats.reset(state.now())
    return {"ok": True}


def routes() -> list[Route]:
    return [
        _route("/healthz", healthz, "GET"),
        _route("/sandbox/shops", list_shops, "GET"),
        _route("/sandbox/shops", add_shops, "POST"),
        _route("/sandbox/shops/{shop_id}/expire-token", expire_token, "POST"),
        _route("/sandbox/orders", register_orders, "POST"),
        _route("/sandbox/lost-pushes", add_lost_pushes, "POST"),
        _route("/sandbox/faults", get_faults, "GET"),
        _route("/sandbox/faults", set_faults, "POST"),
        _route("/sandbox/stats", get_stats, "GET"),
        _route("/sandbox/reset-stats", reset_stats, "POST"),
    ]
