"""Waiting in tests: until something holds, up to a generous bound, never asserting time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], Awaitable[bool] | bool], within: float, what: str) -> float:
    """Seconds until `condition()` (plain or async) holds; fails the test after `within` seconds."""
    started = time.monotonic()
    while True:
        held = condition()
        if await held if inspect.isawaitable(held) else held:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)
