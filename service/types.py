"""Shared vocabulary of the consumer and the ingest: time, partitions, shop credentials, rows.

Plain type aliases and frozen dataclasses with no I/O, so any module can import them
without pulling in a client or the store (the Shopee client returns a TokenPair without
knowing about Postgres; the store writes OrderRows without knowing about Shopee).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

#: seconds, from time.time (wall) or time.monotonic (durations); tests pass a fake
Clock = Callable[[], float]
#: asyncio.sleep, or a fake that advances a fake clock
Sleep = Callable[[float], Awaitable[None]]
#: (topic, partition); aiokafka's TopicPartition is a NamedTuple and compares equal to it
Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Credentials:
    """A shop's row of merchant_shopee_config, as far as API calls need it."""

    shop_id: str
    access_token: str
    refresh_token: str
    access_token_expires_at: dt.datetime | None = None
    refresh_token_expires_at: dt.datetime | None = None

    def needs_refresh(self, now: dt.datetime, margin_seconds: float) -> bool:
        """Expired or about to; an unknown expiry counts as valid until Shopee rejects it."""
        if self.access_token_expires_at is None:
            return False
        return self.access_token_expires_at - dt.timedelta(seconds=margin_seconds) <= now


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a token refresh returns: a new access token and a new (single-use) refresh token."""

    access_token: str
    refresh_token: str
    access_token_expires_at: dt.datetime | None
    refresh_token_expires_at: dt.datetime | None


#: refreshes a shop's tokens from its current credentials (called under the shop's row lock)
Refresher = Callable[[Credentials], Awaitable[TokenPair]]


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One row of shopee_orders_raw."""

    shop_id: str
    order_sn: str
    order_status: str | None
    update_time: int | None
    order_detail: dict[str, Any]
    event_id: str | None
    record_timestamp_ms: int | None
