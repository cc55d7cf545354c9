"""RecoverAPI over the consumer's ShopeeClient: signing, parameters, and malformed answers."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from service.consume.shopee import ShopeeClient
from service.errors import ShopeePermanent, ShopeeTransient
from service.recover.api import CONFIRM_LOST_PUSH_PATH, LOST_PUSH_PATH, ORDER_LIST_PATH, RecoverAPI
from service.signing import api_sign

KEY = b"test_partner_key_do_not_use"
PARTNER = 2001887
NOW = 1655714431


def api(handler: Callable[[httpx.Request], httpx.Response]) -> RecoverAPI:
    client = ShopeeClient(
        base_url="https://shopee.test",
        partner_id=PARTNER,
        partner_key=KEY,
        transport=httpx.MockTransport(handler),
        wall_clock=lambda: NOW,
    )
    return RecoverAPI(client)


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


def ok(**body: object) -> httpx.Response:
    return httpx.Response(200, json={"request_id": "r", "error": "", "message": "", **body})


async def test_lost_push_calls_are_publicly_signed_and_parsed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == LOST_PUSH_PATH:
            item = {"shop_id": 7, "code": 3, "timestamp": 9, "data": '{"ordersn":"A"}'}
            return ok(response={"push_message_list": [item], "has_next_page": True, "last_message_id": 41})
        return ok()

    recover = api(handler)
    page = await recover.lost_push_page()
    await recover.confirm_lost_pushes(page.last_message_id)
    assert (page.has_next_page, page.last_message_id, page.messages[0].data) == (True, 41, '{"ordersn":"A"}')
    for request, path in zip(seen, (LOST_PUSH_PATH, CONFIRM_LOST_PUSH_PATH), strict=True):
        assert query(request)["sign"] == api_sign(KEY, PARTNER, path, NOW)
        assert "access_token" not in query(request)
    assert orjson.loads(seen[1].content) == {"last_message_id": 41}


async def test_order_list_is_shop_signed_by_update_time_with_statuses() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        items = [{"order_sn": "A", "order_status": "SHIPPED"}, {"order_sn": "B"}]
        return ok(response={"more": True, "next_cursor": "c2", "order_list": items})

    page = await api(handler).order_page("727720655", "tok", 100, 200, cursor="c1")
    q = query(seen[0])
    assert q["sign"] == api_sign(KEY, PARTNER, ORDER_LIST_PATH, NOW, "tok", "727720655")
    assert (q["time_range_field"], q["time_from"], q["time_to"], q["page_size"]) == ("update_time", "100", "200", "100")
    assert (q["cursor"], q["response_optional_fields"]) == ("c1", "order_status")
    assert (page.orders, page.more, page.next_cursor) == ([("A", "SHIPPED"), ("B", None)], True, "c2")


async def test_the_first_page_sends_no_cursor_and_long_windows_are_refused_before_calling() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok(response={"more": False, "next_cursor": "", "order_list": []})

    recover = api(handler)
    await recover.order_page("1", "tok", 0, 15 * 86400)
    assert "cursor" not in query(seen[0])
    with pytest.raises(ValueError, match="window"):
        await recover.order_page("1", "tok", 0, 15 * 86400 + 1)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"response": {"more": True, "next_cursor": "", "order_list": []}},
        {"response": {"more": False, "order_list": "nope"}},
        {},
    ],
)
async def test_malformed_order_lists_are_transient(body: dict[str, object]) -> None:
    with pytest.raises(ShopeeTransient):
        await api(lambda request: ok(**body)).order_page("1", "tok", 0, 10)


async def test_a_shopee_error_is_classified_like_the_consumers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"request_id": "r", "error": "order.order_list_invalid_time", "message": "x"})

    with pytest.raises(ShopeePermanent):
        await api(handler).order_page("1", "tok", 0, 10)
