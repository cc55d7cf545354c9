"""Shopee Open Platform client: order detail and token refresh, over httpx.

The calls and their signing: docs/contract.md#api-calls.

Every failure becomes one of the errors in service/errors.py, so the worker can choose
between retrying and dead-lettering by `retriable` alone:

    network error, timeout, 5xx, error_server, error_network, error_sign  -> ShopeeTransient
    HTTP 429, any error/message about rate limits / too many requests      -> ShopeeRateLimited
    error_auth, invalid_acceess_token, "Invalid access_token"              -> ShopeeAuthError
    error_param, error_permission, error_shop, other errors                -> ShopeePermanent
    a refresh token Shopee refuses                                          -> CredentialsError

error_sign is treated as transient: it means our key or clock is wrong, which an operator
fixes; until then the records wait uncommitted instead of being dead-lettered en masse.

Pooled connections: a server may close an idle keep-alive connection just as a request
goes out on it ("Server disconnected without sending a response"). A GET that meets such
a closed connection is sent once more at once, on a fresh connection, without counting
as a retry: nothing reached Shopee. Idle connections are dropped after
KEEPALIVE_EXPIRY_SECONDS, well before servers close them (nginx: 75 s, Shopee's edge more).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import orjson

from service.errors import (
    CredentialsError,
    ShopeeAuthError,
    ShopeeError,
    ShopeePermanent,
    ShopeeRateLimited,
    ShopeeTransient,
)
from service.signing import api_sign
from service.types import TokenPair

ORDER_DETAIL_PATH = "/api/v2/order/get_order_detail"
ACCESS_TOKEN_PATH = "/api/v2/auth/access_token/get"  # noqa: S105 - a URL path
MAX_ORDER_SNS = 50
KEEPALIVE_EXPIRY_SECONDS = 4.0
#: what a peer's close of a pooled connection looks like while a request is sent on it
_STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
REFRESH_TOKEN_LIFETIME = dt.timedelta(days=30)

_TRANSIENT_ERRORS = {"error_server", "error_network", "error_sign", "error_inner", "error_busy"}
_AUTH_ERRORS = {"error_auth", "invalid_acceess_token", "invalid_access_token", "error_token"}
_KNOWN_PERMANENT = {"error_param", "error_permission", "error_shop", "error_not_found", "error_data"}


@dataclass(frozen=True, slots=True)
class OrderDetails:
    """get_order_detail's answer: the orders found, and the SNs Shopee does not know."""

    orders: list[dict[str, Any]]
    missing: list[str] = field(default_factory=list)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _mentions_rate_limit(text: str) -> bool:
    text = text.lower()
    return any(s in text for s in ("rate limit", "ratelimit", "too many request", "too_many_request", "throttl"))


def classify(response: httpx.Response, body: dict[str, Any] | None) -> ShopeeError | None:
    """The error an API response stands for, or None when it succeeded."""
    status = response.status_code
    error = str((body or {}).get("error") or "")
    message = str((body or {}).get("message") or "")
    kw: dict[str, Any] = {"shopee_error": error, "status_code": status}
    detail = f"HTTP {status} {error or '-'}: {message[:200]}"
    if status == 429 or _mentions_rate_limit(error) or _mentions_rate_limit(message):
        return ShopeeRateLimited(detail, retry_after_seconds=_retry_after(response), **kw)
    if error in _AUTH_ERRORS or "invalid access_token" in message.lower() or "invalid_acceess_token" in message:
        return ShopeeAuthError(detail, **kw)
    if status >= 500 or error in _TRANSIENT_ERRORS:
        return ShopeeTransient(detail, **kw)
    if body is None:
        # a 2xx/4xx without Shopee's JSON envelope: a proxy or gateway answered
        return (
            ShopeeTransient(detail, **kw)
            if status in (408, 409, 425) or status < 400
            else ShopeePermanent(detail, reason="shopee_http_error", **kw)
        )
    if error:
        reason = f"shopee_{error}" if error in _KNOWN_PERMANENT else "shopee_permanent"
        return ShopeePermanent(detail, reason=reason, **kw)
    if status >= 400:
        return ShopeePermanent(detail, reason="shopee_http_error", **kw)
    return None


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _shop_param(shop_id: str) -> int | str:
    return int(shop_id) if shop_id.isdigit() else shop_id


class ShopeeClient:
    """`async with ShopeeClient(...)`: one httpx.AsyncClient (connection pool) for the consumer."""

    def __init__(
        self,
        *,
        base_url: str,
        partner_id: int,
        partner_key: bytes,
        optional_fields: Sequence[str] = (),
        timeout_seconds: float = 10.0,
        max_connections: int = 20,
        transport: httpx.AsyncBaseTransport | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._partner_id = partner_id
        self._key = partner_key
        self._optional = ",".join(optional_fields)
        self._clock = wall_clock
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout_seconds,
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
            ),
            headers={"User-Agent": "marketplace-webhook-gateway"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ShopeeClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(self, request: httpx.Request) -> tuple[httpx.Response, dict[str, Any] | None]:
        try:
            try:
                response = await self._http.send(request)
            except _STALE_CONNECTION:
                # Only a GET: a POST (the token refresh spends its refresh token) may have
                # been processed, and resending it is the worker's decision, not ours.
                if request.method != "GET":
                    raise
                response = await self._http.send(request)  # the dead connection left the pool
        except httpx.TimeoutException as exc:
            raise ShopeeTransient(f"timeout: {type(exc).__name__}", reason="shopee_timeout") from exc
        except httpx.TransportError as exc:
            raise ShopeeTransient(f"network error: {type(exc).__name__}", reason="shopee_network") from exc
        body = _json(response)
        error = classify(response, body)
        if error is not None:
            raise error
        assert body is not None
        return response, body

    async def call(
        self,
        method: str,
        path: str,
        *,
        shop: tuple[str, str] | None = None,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Any other API call: signed public, or shop-level when `shop` is (shop_id, access_token).

        Returns Shopee's decoded envelope; failures raise the same errors as the calls above.
        """
        ts = int(self._clock())
        query: dict[str, Any] = {"partner_id": self._partner_id, "timestamp": ts}
        if shop is None:
            query["sign"] = api_sign(self._key, self._partner_id, path, ts)
        else:
            shop_id, access_token = shop
            query.update(access_token=access_token, shop_id=shop_id)
            query["sign"] = api_sign(self._key, self._partner_id, path, ts, access_token, shop_id)
        query.update(params or {})
        content = None if body is None else orjson.dumps(body)
        headers = None if body is None else {"Content-Type": "application/json"}
        request = self._http.build_request(method, path, params=query, content=content, headers=headers)
        _, answer = await self._send(request)
        assert answer is not None
        return answer

    async def get_order_detail(self, shop_id: str, access_token: str, order_sns: Sequence[str]) -> OrderDetails:
        """Details of up to 50 orders. Unknown SNs come back in `missing`, not as an error."""
        if not 1 <= len(order_sns) <= MAX_ORDER_SNS:
            raise ValueError(f"get_order_detail takes 1..{MAX_ORDER_SNS} order SNs, got {len(order_sns)}")
        ts = int(self._clock())
        params: dict[str, Any] = {
            "partner_id": self._partner_id,
            "timestamp": ts,
            "access_token": access_token,
            "shop_id": shop_id,
            "sign": api_sign(self._key, self._partner_id, ORDER_DETAIL_PATH, ts, access_token, shop_id),
            "order_sn_list": ",".join(order_sns),
        }
        if self._optional:
            params["response_optional_fields"] = self._optional
        request = self._http.build_request("GET", ORDER_DETAIL_PATH, params=params)
        try:
            _, body = await self._send(request)
        except ShopeePermanent as exc:
            if exc.shopee_error == "error_not_found":
                # none of the SNs exists for this shop
                return OrderDetails(orders=[], missing=list(order_sns))
            raise
        assert body is not None
        orders = [o for o in (body.get("response") or {}).get("order_list") or [] if isinstance(o, dict)]
        found = {str(o.get("order_sn")) for o in orders}
        return OrderDetails(orders=orders, missing=[sn for sn in order_sns if sn not in found])

    async def refresh_access_token(self, shop_id: str, refresh_token: str) -> TokenPair:
        """A new (access, refresh) pair; the refresh token passed in is spent by this call."""
        ts = int(self._clock())
        params: dict[str, str | int] = {
            "partner_id": self._partner_id,
            "timestamp": ts,
            "sign": api_sign(self._key, self._partner_id, ACCESS_TOKEN_PATH, ts),
        }
        payload = {"refresh_token": refresh_token, "partner_id": self._partner_id, "shop_id": _shop_param(shop_id)}
        request = self._http.build_request(
            "POST",
            ACCESS_TOKEN_PATH,
            params=params,
            content=orjson.dumps(payload),
            headers={"Content-Type": "application/json"},
        )
        try:
            _, body = await self._send(request)
        except (ShopeePermanent, ShopeeAuthError) as exc:
            raise CredentialsError(
                f"Shopee refused the refresh token of shop {shop_id}: {exc}", reason="refresh_token_rejected"
            ) from exc
        assert body is not None
        access, refresh, expire_in = body.get("access_token"), body.get("refresh_token"), body.get("expire_in")
        if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            raise ShopeeTransient("token refresh answered without a token pair", reason="shopee_bad_response")
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        expires = now + dt.timedelta(seconds=float(expire_in)) if isinstance(expire_in, int | float) else None
        return TokenPair(access, refresh, expires, now + REFRESH_TOKEN_LIFETIME)
