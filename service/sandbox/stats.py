"""What the sandbox saw: calls per shop (aligned minutes and rolling 60 s), errors, refreshes.

Throttle tests read `max_calls_rolling_60s`: the most calls one shop made inside any 60 s
span, computed from the call timestamps (sandbox clock), so a limiter that is correct per
rolling minute but bursts across a minute boundary is still judged fairly.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

WINDOW_SECONDS = 60.0


def max_in_window(times: list[float], window: float = WINDOW_SECONDS) -> int:
    """The largest number of `times` inside any half-open span [t, t + window)."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass(slots=True)
class _ShopStats:
    call_times: list[float] = field(default_factory=list)
    order_sns: int = 0
    refreshes: int = 0
    rate_limited: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        per_minute = Counter(str(int(t // WINDOW_SECONDS * WINDOW_SECONDS)) for t in self.call_times)
        return {
            "calls": len(self.call_times),
            "calls_per_minute": dict(sorted(per_minute.items())),
            "max_calls_rolling_60s": max_in_window(self.call_times),
            "order_sns_requested": self.order_sns,
            "token_refreshes": self.refreshes,
            "rate_limited": self.rate_limited,
            "errors": dict(self.errors),
        }


@dataclass(slots=True)
class Stats:
    since: float
    _shops: defaultdict[int, _ShopStats] = field(default_factory=lambda: defaultdict(_ShopStats))
    _errors: Counter[str] = field(default_factory=Counter)
    _calls_by_path: Counter[str] = field(default_factory=Counter)

    def call(self, path: str, shop_id: int | None, now: float) -> None:
        """An API call arrived (counted whatever its answer); shop-level calls count per shop."""
        self._calls_by_path[path] += 1
        if shop_id is not None:
            self._shops[shop_id].call_times.append(now)

    def served(self, shop_id: int, order_sns: int) -> None:
        """Order SNs answered in a successful get_order_detail."""
        self._shops[shop_id].order_sns += order_sns

    def error(self, kind: str, shop_id: int | None) -> None:
        self._errors[kind] += 1
        if shop_id is not None:
            self._shops[shop_id].errors[kind] += 1
            if kind == "error_too_many_request":
                self._shops[shop_id].rate_limited += 1

    def refreshed(self, shop_id: int) -> None:
        self._shops[shop_id].refreshes += 1

    def reset(self, now: float) -> None:
        self.since = now
        self._shops.clear()
        self._errors.clear()
        self._calls_by_path.clear()

    def snapshot(self, now: float) -> dict[str, Any]:
        shops = {str(shop_id): s.snapshot() for shop_id, s in sorted(self._shops.items())}
        return {
            "since": self.since,
            "now": now,
            "totals": {
                "calls": sum(s["calls"] for s in shops.values()),
                "calls_by_path": dict(self._calls_by_path),
                "order_sns_requested": sum(s["order_sns_requested"] for s in shops.values()),
                "token_refreshes": sum(s["token_refreshes"] for s in shops.values()),
                "rate_limited": sum(s["rate_limited"] for s in shops.values()),
                "max_calls_rolling_60s": max((s["max_calls_rolling_60s"] for s in shops.values()), default=0),
                "errors": dict(self._errors),
            },
            "shops": shops,
        }
