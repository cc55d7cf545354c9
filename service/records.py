"""Shared vocabulary: the parsed push, the Kafka order record (docs/contract.md#the-kafka-record) and dead letters.

Everything that crosses a module boundary is one of these; encode/decode live here too.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

PLATFORM = "shopee"

# A dead letter carries the raw body base64-encoded (4/3 larger); past about 750 KiB it
# would exceed Kafka's default 1 MiB record limit, be refused for good, and turn a push
# that retrying cannot fix into a 503 (or a row that blocks the outbox relay). Such a body
# keeps its head, and its size and digest go into the detail.
DEAD_LETTER_BODY_BYTES = 512 * 1024


def shop_key(shop_id: str | int) -> str:
    return f"shop-{shop_id}"


_RECORD_FIELDS = ("platform", "shop_id", "order_sn", "order_status", "timestamp", "update_time", "event_id", "code")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _lenient_int(value: Any) -> int | None:
    """An integer, or a string of decimal digits (as some producers send numbers)."""
    if _is_int(value):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _lenient_id(value: Any) -> str | None:
    """A shop id: a non-empty string, or a non-negative integer (as Shopee itself sends it)."""
    if isinstance(value, str):
        return value or None
    if _is_int(value) and value >= 0:
        return str(value)
    return None


@dataclass(slots=True, kw_only=True)
class OrderRecord:
    """The value on marketplace.orders (docs/contract.md#the-kafka-record), a superset of the seed's record.

    A slotted dataclass rather than a pydantic model: the consumer holds one per pending
    record (hundreds of thousands with 10,000 shops' partial batches), and orjson
    serialises dataclasses natively on the ingest's hot path. Not `frozen`, like
    PushEvent: a frozen one took 1.7 µs to build against 0.6 µs, once per push and once
    per record consumed. Nothing changes a record once it is built.
    """

    platform: str = PLATFORM
    shop_id: str
    order_sn: str
    order_status: str | None = None
    timestamp: int  # ms, when the gateway received the push
    update_time: int | None = None  # s, from the push
    event_id: str
    code: int = 3

    @property
    def key(self) -> str:
        return shop_key(self.shop_id)

    def encode(self) -> bytes:
        return orjson.dumps(self)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RECORD_FIELDS}

    @classmethod
    def from_dict(cls, data: Any) -> OrderRecord:
        """Validate a decoded record; ValueError names what is wrong. Unknown keys are ignored.

        Liberal where the meaning is unambiguous (docs/schemas/order-record.schema.json):
        shop_id may be a number, integers may be decimal strings, and a missing event_id
        is derived as the ingest derives it.
        """
        if not isinstance(data, dict):
            raise ValueError(f"record is {type(data).__name__}, not an object")
        shop_id = _lenient_id(data.get("shop_id"))
        if shop_id is None:
            raise ValueError("record field 'shop_id' must be a non-empty string or a non-negative integer")
        order_sn = data.get("order_sn")
        if not isinstance(order_sn, str) or not order_sn:
            raise ValueError("record field 'order_sn' must be a non-empty string")
        timestamp = _lenient_int(data.get("timestamp"))
        if timestamp is None:
            raise ValueError("record field 'timestamp' must be an integer")
        status, update_time = data.get("order_status"), _lenient_int(data.get("update_time"))
        if status is not None and not isinstance(status, str):
            raise ValueError("record field 'order_status' must be a string or null")
        if data.get("update_time") is not None and update_time is None:
            raise ValueError("record field 'update_time' must be an integer or null")
        code, platform = _lenient_int(data.get("code", 3)), data.get("platform", PLATFORM)
        if code is None or not isinstance(platform, str):
            raise ValueError("record fields 'code' and 'platform' must be an integer and a string")
        event_id = data.get("event_id")
        if event_id is None:
            event_id = event_id_for(shop_id, order_sn, status, update_time, code, None)
        elif not isinstance(event_id, str) or not event_id:
            raise ValueError("record field 'event_id' must be a non-empty string when present")
        return cls(
            platform=platform,
            shop_id=shop_id,
            order_sn=order_sn,
            order_status=status,
            timestamp=timestamp,
            update_time=update_time,
            event_id=event_id,
            code=code,
        )

    @classmethod
    def decode(cls, value: bytes) -> OrderRecord:
        return cls.from_dict(orjson.loads(value))


def event_id_for(
    shop_id: str,
    order_sn: str,
    status: str | None,
    update_time: int | None,
    code: int,
    msg_id: str | None,
) -> str:
    """Stable id of one push: the same push delivered twice gets the same id.

    Shopee's `msg_id` when it sends one; otherwise a digest of what identifies the push
    (not of the raw bytes, so a re-encoded retry of the same push still matches).
    """
    if msg_id:
        return msg_id.lower()
    basis = f"{PLATFORM}|{shop_id}|{order_sn}|{status or ''}|{update_time or ''}|{code}"
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


@dataclass(slots=True)
class PushEvent:
    """A signed push as it flows through the transform pipeline.

    Transforms return a new event rather than change the one they were given. Not
    `frozen`: a frozen dataclass's constructor costs three times as much, and the default
    pipeline builds three events per push (docs/benchmarks.md).
    """

    body: dict[str, Any]
    received_ms: int
    code: int | None = None
    shop_id: str | None = None
    order_sn: str | None = None
    status: str | None = None
    update_time: int | None = None
    msg_id: str | None = None
    record: OrderRecord | None = None


class DeadLetter(BaseModel):
    """A record on the dead-letter topic: why it failed, and everything needed to retry.

    `record` is the original order record when there was one (replay re-publishes it);
    `raw_body_b64` is the exact push body when the failure happened at ingest.
    """

    model_config = ConfigDict(extra="ignore")

    reason: str
    detail: str = ""
    source: str  # "ingest" | "consumer"
    failed_at_ms: int
    shop_id: str | None = None
    record: dict[str, Any] | None = None
    raw_body_b64: str | None = None
    attempts: int = Field(default=1, ge=0)

    @property
    def key(self) -> str:
        return shop_key(self.shop_id) if self.shop_id else "shop-unknown"

    def encode(self) -> bytes:
        return orjson.dumps(self.model_dump(exclude_none=True))

    @classmethod
    def decode(cls, value: bytes) -> DeadLetter:
        return cls.model_validate(orjson.loads(value))

    @classmethod
    def for_raw_body(
        cls,
        reason: str,
        detail: str,
        raw_body: bytes,
        now_ms: int,
        shop_id: str | None = None,
        *,
        source: str = "ingest",
    ) -> DeadLetter:
        """A letter keeping the exact bytes received, truncated to DEAD_LETTER_BODY_BYTES."""
        if len(raw_body) > DEAD_LETTER_BODY_BYTES:
            digest = hashlib.sha256(raw_body).hexdigest()
            detail = (
                f"raw body truncated to {DEAD_LETTER_BODY_BYTES} of {len(raw_body)} bytes (sha256 {digest}); {detail}"
            )
            raw_body = raw_body[:DEAD_LETTER_BODY_BYTES]
        return cls(
            reason=reason,
            detail=detail[:500],
            source=source,
            failed_at_ms=now_ms,
            shop_id=shop_id,
            raw_body_b64=base64.b64encode(raw_body).decode(),
        )

    def raw_body(self) -> bytes | None:
        return base64.b64decode(self.raw_body_b64) if self.raw_body_b64 is not None else None
