"""Per-shop call limiter: at most `limit` Shopee calls per shop in any rolling window.

It delays calls and never rejects them (the old pipeline's rate limit skipped runs and
lost orders). The window is a sliding log of call times: a call may start once the call
`limit` places before it is a full window old. `delay()` and `record()` are pure over an
injected clock; `acquire()` is the async wrapper that waits and then records.

Shopee counts calls when they arrive, and arrival times jitter with the network, so the
window is kept a little longer than Shopee's (`margin_seconds`, by default a sixtieth of
the window and at least 0.25 s): two calls `limit` apart never land in one Shopee window.
Global concurrency is a plain count owned by the runner's single loop.
"""

from __future__ import annotations

import asyncio
from collections import deque

from service.types import Clock, Sleep


class ShopThrottle:
    def __init__(
        self,
        limit: int,
        *,
        window_seconds: float = 60.0,
        margin_seconds: float | None = None,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        margin = max(window_seconds / 60, 0.25) if margin_seconds is None else margin_seconds
        self.window = window_seconds + margin
        self._clock = clock
        self._sleep = sleep
        self._calls: dict[str, deque[float]] = {}

    def _log(self, shop: str, now: float) -> deque[float]:
        calls = self._calls.get(shop)
        if calls is None:
            calls = self._calls[shop] = deque()
        while calls and calls[0] <= now - self.window:
            calls.popleft()
        return calls

    def delay(self, shop: str, now: float) -> float:
        """Seconds until `shop` may make another call (0 when it may call now)."""
        calls = self._log(shop, now)
        if len(calls) < self.limit:
            return 0.0
        return max(0.0, calls[-self.limit] + self.window - now)

    def record(self, shop: str, now: float) -> None:
        self._log(shop, now).append(now)

    async def acquire(self, shop: str) -> float:
        """Wait until `shop` may call, count the call, and return the seconds waited."""
        start = self._clock()
        while (wait := self.delay(shop, self._clock())) > 0:
            await self._sleep(wait)
        self.record(shop, self._clock())
        return self._clock() - start

    def forget_idle(self, now: float) -> int:
        """Drop shops without calls in the window, so memory follows active shops only.

        Returns how many shops were forgotten."""
        idle = [s for s in self._calls if not self._log(s, now)]
        for shop in idle:
            del self._calls[shop]
        return len(idle)
