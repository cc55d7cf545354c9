"""The sandbox's whole in-memory state: shops and tokens, orders, lost pushes, rate windows.

No I/O and no clock reading of its own: every method that needs the time takes `now`,
and the app reads it from the injected clock (and waits out injected latency with the
injected `sleep`).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from service.sandbox.config import (
    LOST_PUSH_PAGE_SIZE,
    LOST_PUSH_RETENTION_SECONDS,
    Clock,
    Faults,
    SandboxConfig,
    Sleep,
    system_clock,
)
from service.sandbox.orders import OrderBook
from service.sandbox.stats import WINDOW_SECONDS, Stats
from service.sandbox.tokens import TokenBook, TokenPair, merchant_id_for


@dataclass(frozen=True, slots=True)
class LostPush:
    message_id: int
    shop_id: int
    code: int
    timestamp: int
    data: str  # the push's `data` object as a JSON string, as Shopee returns it
    stored_at: float


class RateWindows:
    """Per-shop sliding 60 s log of accepted calls."""

    def __init__(self) -> None:
        self._calls: dict[int, deque[float]] = {}

    def admit(self, shop_id: int, now: float, limit: int) -> float | None:
        """Record the call and return None, or return the seconds until one would be allowed."""
        window = self._calls.setdefault(shop_id, deque())
        while window and now - window[0] >= WINDOW_SECONDS:
            window.popleft()
        if limit > 0 and len(window) >= limit:
            return max(0.0, window[0] + WINDOW_SECONDS - now)
        window.append(now)
        return None


class SandboxState:
    def __init__(self, config: SandboxConfig, clock: Clock = system_clock, sleep: Sleep = asyncio.sleep) -> None:
        self.config = config
        self.clock = clock
        self.sleep = sleep
        self.faults: Faults = config.faults
        self.rng = random.Random(config.seed)
        started = clock()
        self.tokens = TokenBook(
            partner_key=config.partner_key,
            issued_at=started,
            ttl=config.token_ttl_seconds,
            grace=config.token_grace_seconds,
            refresh_ttl=config.refresh_ttl_seconds,
        )
        self.orders = OrderBook(
            epoch=int(started), auto_orders=config.auto_orders, unknown_prefix=config.unknown_prefix
        )
        self.stats = Stats(since=started)
        self.rate = RateWindows()
        self._lost: list[LostPush] = []
        self._next_message_id = 1
        for shop_id in config.initial_shops:
            self.tokens.add_shop(shop_id)

    def now(self) -> float:
        return self.clock()

    # -- shops -------------------------------------------------------------------------

    def shop_exists(self, shop_id: int) -> bool:
        """True when the shop is known, creating it on first use unless shops are strict."""
        if self.tokens.has_shop(shop_id):
            return True
        if self.config.strict_shops:
            return False
        self.tokens.add_shop(shop_id)
        return True

    def add_shops(self, shop_ids: list[int]) -> list[dict[str, Any]]:
        return [self.shop_info(self.tokens.add_shop(shop_id)) for shop_id in shop_ids]

    def all_shops(self) -> list[dict[str, Any]]:
        return [self.shop_info(self.tokens.current(shop_id)) for shop_id in self.tokens.shops()]

    def shop_info(self, pair: TokenPair) -> dict[str, Any]:
        return {
            "shop_id": pair.shop_id,
            "merchant_id": str(merchant_id_for(pair.shop_id)),
            "partner_id": self.config.partner_id,
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "access_token_expires_at": pair.access_expires_at,
            "refresh_token_expires_at": pair.refresh_expires_at,
        }

    # -- faults ------------------------------------------------------------------------

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def admit(self, shop_id: int, now: float) -> int | None:
        """None when the shop may call now, else the Retry-After seconds (rate limit)."""
        wait = self.rate.admit(shop_id, now, self.faults.rate_limit_per_minute)
        return None if wait is None else max(1, math.ceil(wait))

    # -- lost pushes -------------------------------------------------------------------

    def add_lost_push(self, shop_id: int, code: int, timestamp: int, data: str) -> int:
        message_id = self._next_message_id
        self._next_message_id += 1
        self._lost.append(LostPush(message_id, shop_id, code, timestamp, data, self.now()))
        return message_id

    def lost_push_page(self, now: float) -> tuple[list[LostPush], bool, int]:
        """The oldest unconfirmed lost pushes (at most 100), whether more wait, the last id."""
        self._lost = [p for p in self._lost if now - p.stored_at < LOST_PUSH_RETENTION_SECONDS]
        page = self._lost[:LOST_PUSH_PAGE_SIZE]
        return page, len(self._lost) > len(page), page[-1].message_id if page else 0

    def confirm_lost_pushes(self, last_message_id: int) -> int:
        before = len(self._lost)
        self._lost = [p for p in self._lost if p.message_id > last_message_id]
        return before - len(self._lost)

    def lost_push_count(self) -> int:
        return len(self._lost)
