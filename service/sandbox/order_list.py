"""The sandbox's get_order_list (SPEC 4.6), faithful to Shopee's rules.

Required: `time_range_field` (create_time or update_time), `time_from`, `time_to` (at
most 15 days apart, 1,296,000 s exactly is accepted; more, or from after to, gives
`order.order_list_invalid_time`), `page_size` (1..100). Optional: `cursor` (opaque: omit
it on the first page), `order_status` (one status), `response_optional_fields`
(`order_status` adds each order's status). Answer: `response.more`,
`response.next_cursor` ("" when `more` is false), `response.order_list[]`. Only orders
registered with the sandbox are listed (auto-orders exist only when asked for by SN).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request

from service.sandbox.api import ApiError, Call
from service.sandbox.state import SandboxState

MAX_WINDOW_SECONDS = 15 * 86400
MAX_PAGE_SIZE = 100
STATUSES = {
    "UNPAID",
    "READY_TO_SHIP",
    "PROCESSED",
    "RETRY_SHIP",
    "SHIPPED",
    "TO_CONFIRM_RECEIVE",
    "IN_CANCEL",
    "CANCELLED",
    "TO_RETURN",
    "COMPLETED",
    "PENDING",
    "INVOICE_PENDING",
}


def _required_int(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        raise ApiError("error_param", f"{name} is required.")
    try:
        return int(raw)
    except ValueError:
        raise ApiError("error_param", f"Invalid {name}.") from None


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"sandbox:{offset}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError("error_param", "Invalid cursor.") from None
    prefix, _, offset = text.partition(":")
    if prefix != "sandbox" or not offset.isdigit():
        raise ApiError("error_param", "Invalid cursor.")
    return int(offset)


async def get_order_list(request: Request, state: SandboxState, call: Call) -> dict[str, Any]:
    assert call.shop_id is not None
    field = request.query_params.get("time_range_field", "")
    if field not in ("create_time", "update_time"):
        raise ApiError("error_param", "time_range_field should be create_time or update_time.")
    time_from, time_to = _required_int(request, "time_from"), _required_int(request, "time_to")
    if time_from > time_to or time_to - time_from > MAX_WINDOW_SECONDS:
        raise ApiError("order.order_list_invalid_time", "The time range should be within 15 days.")
    page_size = _required_int(request, "page_size")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ApiError("error_param", f"page_size should be between 1 and {MAX_PAGE_SIZE}.")
    status = request.query_params.get("order_status") or None
    if status is not None and status not in STATUSES:
        raise ApiError("error_param", "Invalid order_status.")
    cursor = request.query_params.get("cursor", "")
    offset = decode_cursor(cursor) if cursor else 0
    wanted = {f.strip() for f in request.query_params.get("response_optional_fields", "").split(",")}
    orders = state.orders.listed(call.shop_id, field, time_from, time_to, status)
    page = orders[offset : offset + page_size]
    more = offset + page_size < len(orders)
    items = [
        {"order_sn": o.order_sn, **({"order_status": o.order_status} if "order_status" in wanted else {})} for o in page
    ]
    return {
        "response": {
            "more": more,
            "next_cursor": encode_cursor(offset + page_size) if more else "",
            "order_list": items,
        }
    }
