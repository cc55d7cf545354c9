from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from service.consume.shopee import ShopeeClient
from service.errors import (
    CredentialsError,
    ShopeeAuthError,
    ShopeePermanent,
    ShopeeRateLimited,
    ShopeeTransient,
)
from tests.signer import api_signature

KEY = b"test_partner_key_do_not_use"
PARTNER = 2001887
NOW = 1655714431


def client(handler: Callable[[httpx.Request], httpx.Response]) -> ShopeeClient:
    return ShopeeClient(
        base_url="https://shopee.test",
        partner_id=PARTNER,
        partner_key=KEY,
        optional_fields=["item_list", "total_amount"],
        transport=httpx.MockTransport(handler),
        wall_clock=lambda: NOW,
    )


def envelope(status: int = 200, headers: dict[str, str] | None = None, **body: object) -> httpx.Response:
    return httpx.Response(status, json={"request_id": "r", "error": "", "message": "", **body}, headers=headers)


async def test_order_detail_request_is_signed_and_carries_all_sns() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return envelope(response={"order_list": [{"order_sn": "A", "order_status": "SHIPPED"}]})

    async with client(handler) as api:
        details = await api.get_order_detail("727720655", "tok", ["A", "B"])
    query = {k: v[0] for k, v in parse_qs(urlsplit(str(seen[0].url)).query).items()}
    assert seen[0].url.path == "/api/v2/order/get_order_detail"
    assert query["order_sn_list"] == "A,B"
    assert query["response_optional_fields"] == "item_list,total_amount"
    assert query["sign"] == api_signature(
        KEY.decode(), PARTNER, "/api/v2/order/get_order_detail", NOW, "tok", "727720655"
    )
    assert (query["partner_id"], query["shop_id"], query["timestamp"]) == (str(PARTNER), "727720655", str(NOW))
    assert details.orders == [{"order_sn": "A", "order_status": "SHIPPED"}]
    assert details.missing == ["B"]


async def test_not_found_means_every_sn_is_missing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return envelope(404, error="error_not_found", message="order_sn not found.", warning=["X"])

    async with client(handler) as api:
        details = await api.get_order_detail("1", "tok", ["X"])
    assert details.orders == []
    assert details.missing == ["X"]


@pytest.mark.parametrize(
    ("response", "error_type", "retriable"),
    [
        (envelope(500, error="error_server", message="Something wrong"), ShopeeTransient, True),
        (envelope(200, error="error_network", message="x"), ShopeeTransient, True),
        (httpx.Response(503, text="upstream unavailable"), ShopeeTransient, True),
        (envelope(429, headers={"Retry-After": "7"}, error="error_too_many_request"), ShopeeRateLimited, True),
        (envelope(200, error="error_busy", message="Rate limit exceeded"), ShopeeRateLimited, True),
        (envelope(403, error="error_auth", message="Invalid access_token."), ShopeeAuthError, True),
        (envelope(403, error="invalid_acceess_token", message="expired"), ShopeeAuthError, True),
        (envelope(400, error="error_param", message="bad"), ShopeePermanent, False),
        (envelope(403, error="error_permission", message="no"), ShopeePermanent, False),
        (envelope(403, error="error_shop", message="Invalid shop_id."), ShopeePermanent, False),
    ],
)
async def test_errors_map_to_the_error_tree(response: httpx.Response, error_type: type, retriable: bool) -> None:
    async with client(lambda request: response) as api:
        with pytest.raises(error_type) as caught:
            await api.get_order_detail("1", "tok", ["A"])
    assert caught.value.retriable is retriable


async def test_rate_limit_honours_retry_after() -> None:
    response = envelope(429, headers={"Retry-After": "7"}, error="error_too_many_request")
    async with client(lambda request: response) as api:
        with pytest.raises(ShopeeRateLimited) as caught:
            await api.get_order_detail("1", "tok", ["A"])
    assert caught.value.retry_after_seconds == 7


async def test_network_errors_and_timeouts_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    for handler in (refuse, slow):
        async with client(handler) as api:
            with pytest.raises(ShopeeTransient):
                await api.get_order_detail("1", "tok", ["A"])


async def test_more_than_fifty_sns_is_a_programming_error() -> None:
    async with client(lambda request: envelope()) as api:
        with pytest.raises(ValueError, match=r"1\.\.50"):
            await api.get_order_detail("1", "tok", [str(i) for i in range(51)])


async def test_refresh_posts_public_signed_body_and_returns_the_new_pair() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return envelope(access_token="new-a", refresh_token="new-r", expire_in=14400)

    async with client(handler) as api:
        pair = await api.refresh_access_token("727720655", "old-r")
    request = seen[0]
    query = {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}
    assert request.method == "POST"
    assert request.url.path == "/api/v2/auth/access_token/get"
    assert query["sign"] == api_signature(KEY.decode(), PARTNER, "/api/v2/auth/access_token/get", NOW)
    assert "access_token" not in query
    assert orjson.loads(request.content) == {"refresh_token": "old-r", "partner_id": PARTNER, "shop_id": 727720655}
    assert (pair.access_token, pair.refresh_token) == ("new-a", "new-r")
    assert pair.access_token_expires_at is not None
    assert pair.access_token_expires_at.timestamp() == NOW + 14400


async def test_rejected_refresh_token_is_a_credentials_error() -> None:
    response = envelope(400, error="error_param", message="refresh_token already used")
    async with client(lambda request: response) as api:
        with pytest.raises(CredentialsError) as caught:
            await api.refresh_access_token("1", "used")
    assert caught.value.reason == "refresh_token_rejected"
    assert not caught.value.retriable


async def test_refresh_during_an_outage_is_transient() -> None:
    response = envelope(500, error="error_server")
    async with client(lambda request: response) as api:
        with pytest.raises(ShopeeTransient):
            await api.refresh_access_token("1", "r")
