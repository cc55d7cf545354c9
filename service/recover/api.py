"""The three Shopee calls recovery needs (SPEC 3.2, 4.6), over the consumer's ShopeeClient.

    get_lost_push_message               public signing; up to 100 messages, no cursor
    confirm_consumed_lost_push_message  public signing; acknowledges up to a message id
    get_order_list                      shop-level signing; one window of at most 15 days

Answers are parsed into small frozen dataclasses; a malformed answer is ShopeeTransient
(a proxy or a bad deploy on Shopee's side: retrying later can help).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from service.errors import ShopeeTransient

LOST_PUSH_PATH = "/api/v2/push/get_lost_push_message"
CONFIRM_LOST_PUSH_PATH = "/api/v2/push/confirm_consumed_lost_push_message"
ORDER_LIST_PATH = "/api/v2/order/get_order_list"
MAX_WINDOW_SECONDS = 15 * 86400
ORDER_LIST_PAGE_SIZE = 100


class Caller(Protocol):
    async def call(
        self,
        method: str,
        path: str,
        *,
        shop: tuple[str, str] | None = None,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class LostMessage:
    shop_id: int | None  # absent for partner-level push codes
    code: int | None
    timestamp: int | None  # when the push was lost, not when it was sent
    data: str  # the original push as a JSON string


@dataclass(frozen=True, slots=True)
class LostPage:
    messages: list[LostMessage]
    has_next_page: bool
    last_message_id: int


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: list[tuple[str, str | None]]  # (order_sn, order_status)
    more: bool
    next_cursor: str


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _response(answer: dict[str, Any], what: str) -> dict[str, Any]:
    response = answer.get("response")
    if not isinstance(response, dict):
        raise ShopeeTransient(f"{what} answered without a response object", reason="shopee_bad_response")
    return response


class RecoverAPI:
    def __init__(self, client: Caller) -> None:
        self._client = client

    async def lost_push_page(self) -> LostPage:
        response = _response(await self._client.call("GET", LOST_PUSH_PATH), "get_lost_push_message")
        items = response.get("push_message_list") or []
        last = _int_or_none(response.get("last_message_id"))
        if not isinstance(items, list) or (items and last is None):
            raise ShopeeTransient("get_lost_push_message answered a malformed page", reason="shopee_bad_response")
        messages = [
            LostMessage(
                shop_id=_int_or_none(item.get("shop_id")),
                code=_int_or_none(item.get("code")),
                timestamp=_int_or_none(item.get("timestamp")),
                data=item["data"] if isinstance(item.get("data"), str) else "",
            )
            for item in items
            if isinstance(item, dict)
        ]
        return LostPage(messages, bool(response.get("has_next_page")), last or 0)

    async def confirm_lost_pushes(self, last_message_id: int) -> None:
        await self._client.call("POST", CONFIRM_LOST_PUSH_PATH, body={"last_message_id": last_message_id})

    async def order_page(
        self, shop_id: str, access_token: str, time_from: int, time_to: int, cursor: str = ""
    ) -> OrderPage:
        """One page of orders updated in [time_from, time_to] (at most 15 days apart)."""
        if not 0 <= time_to - time_from <= MAX_WINDOW_SECONDS:
            raise ValueError(f"window {time_from}..{time_to} is not 0..{MAX_WINDOW_SECONDS} s long")
        params: dict[str, Any] = {
            "time_range_field": "update_time",
            "time_from": time_from,
            "time_to": time_to,
            "page_size": ORDER_LIST_PAGE_SIZE,
            "response_optional_fields": "order_status",
        }
        if cursor:
            params["cursor"] = cursor
        answer = await self._client.call("GET", ORDER_LIST_PATH, shop=(shop_id, access_token), params=params)
        response = _response(answer, "get_order_list")
        items = response.get("order_list") or []
        if not isinstance(items, list):
            raise ShopeeTransient("get_order_list answered a malformed order_list", reason="shopee_bad_response")
        orders = []
        for item in items:
            sn = item.get("order_sn") if isinstance(item, dict) else None
            if isinstance(sn, str) and sn:
                status = item.get("order_status")
                orders.append((sn, status if isinstance(status, str) and status else None))
        more = bool(response.get("more"))
        next_cursor = response.get("next_cursor")
        if more and (not isinstance(next_cursor, str) or not next_cursor):
            raise ShopeeTransient("get_order_list said more but gave no next_cursor", reason="shopee_bad_response")
        return OrderPage(orders, more, next_cursor if more and isinstance(next_cursor, str) else "")
