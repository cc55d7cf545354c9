"""Default Shopee transforms: normalise -> skip_unpaid -> require_fields -> to_record."""

from __future__ import annotations

import re
from typing import Any

from service.pipeline import Skip
from service.records import OrderRecord, PushEvent, event_id_for

ORDER_STATUS_CODE = 3
# Shopee's (undocumented) msg_id is 32 hex; anything else is not trusted as an event id
_MSG_ID = re.compile(r"[0-9a-fA-F]{32}")
VERIFICATION_CODE = 0


def _is_ascii_digits(value: str) -> bool:
    # str.isdigit() alone accepts "²" and "١٢٣", which int() rejects or Shopee never sends.
    return value.isascii() and value.isdigit()


def _as_str_id(value: Any) -> str | None:
    """Shop ids arrive as ints (real pushes) or strings (legacy tests); keep digits only."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, str):
        value = value.strip()
        return value if _is_ascii_digits(value) and len(value) <= 20 else None
    return None


def _as_text(value: Any, limit: int = 64) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        # no control characters: a NUL cannot even be stored in a Postgres text column
        return value if 0 < len(value) <= limit and value.isprintable() else None
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value < 2**53:
        return value
    if isinstance(value, str) and _is_ascii_digits(value.strip()) and len(value.strip()) <= 15:
        return int(value)
    return None


def normalise(event: PushEvent) -> PushEvent | Skip:
    """Read both the real push shape (data.ordersn/data.status) and the flat legacy shape."""
    body = event.body
    raw_code = body.get("code")
    data = body.get("data")
    is_flat = raw_code is None and ("order_sn" in body or "order_status" in body)
    if is_flat:
        code = ORDER_STATUS_CODE
        source: dict[str, Any] = body
        sn, status = body.get("order_sn"), body.get("order_status")
    else:
        code_value = _as_int(raw_code)
        if code_value is None:
            return Skip("bad_code", dead_letter=True, detail=f"code is {type(raw_code).__name__}")
        code = code_value
        if code == VERIFICATION_CODE:
            return Skip("verification")
        if code != ORDER_STATUS_CODE:
            return Skip("unhandled_code", detail=str(code))
        if not isinstance(data, dict):
            return Skip("missing_data", dead_letter=True, detail="data is not an object")
        source = data
        sn, status = (
            data.get("ordersn", data.get("order_sn")),
            data.get("status", data.get("order_status")),
        )
    shop_raw = body.get("shop_id", body.get("shopid"))
    msg_id = body.get("msg_id")
    # PushEvent(...) rather than dataclasses.replace(): a third of the cost, per push
    return PushEvent(
        body=body,
        received_ms=event.received_ms,
        code=code,
        shop_id=_as_str_id(shop_raw),
        order_sn=_as_text(sn),
        status=_as_text(status, 32),
        update_time=_as_int(source.get("update_time")),
        msg_id=msg_id if isinstance(msg_id, str) and _MSG_ID.fullmatch(msg_id) else None,
        record=event.record,
    )


def skip_unpaid(event: PushEvent) -> PushEvent | Skip:
    if event.status is not None and event.status.upper() == "UNPAID":
        return Skip("unpaid")
    return event


def require_fields(event: PushEvent) -> PushEvent | Skip:
    if event.shop_id is not None and event.order_sn is not None:
        return event
    missing = [name for name in ("shop_id", "order_sn") if getattr(event, name) is None]
    if missing:
        return Skip("missing_fields", dead_letter=True, detail="missing or invalid: " + ", ".join(missing))
    return event


def to_record(event: PushEvent) -> PushEvent | Skip:
    if event.shop_id is None or event.order_sn is None:
        return Skip("missing_fields", dead_letter=True, detail="to_record needs shop_id and order_sn")
    code = event.code if event.code is not None else ORDER_STATUS_CODE
    record = OrderRecord(
        shop_id=event.shop_id,
        order_sn=event.order_sn,
        order_status=event.status,
        timestamp=event.received_ms,
        update_time=event.update_time,
        event_id=event_id_for(event.shop_id, event.order_sn, event.status, event.update_time, code, event.msg_id),
        code=code,
    )
    return PushEvent(
        body=event.body,
        received_ms=event.received_ms,
        code=code,
        shop_id=event.shop_id,
        order_sn=event.order_sn,
        status=event.status,
        update_time=event.update_time,
        msg_id=event.msg_id,
        record=record,
    )
