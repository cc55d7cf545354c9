from __future__ import annotations

import asyncio

import pytest

from service.consume.throttle import ShopThrottle
from tests.fakes import FakeClock


def max_in_any_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


async def test_calls_over_the_limit_wait_instead_of_being_dropped() -> None:
    clock = FakeClock(0)
    throttle = ShopThrottle(3, window_seconds=60, margin_seconds=0, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(10):
        await throttle.acquire("s")
        times.append(clock())
    assert len(times) == 10
    assert times == [0, 0, 0, 60, 60, 60, 120, 120, 120, 180]
    assert max_in_any_window(times, 60) == 3


async def test_window_is_rolling_not_fixed() -> None:
    clock = FakeClock(0)
    throttle = ShopThrottle(2, window_seconds=60, margin_seconds=0, clock=clock, sleep=clock.sleep)
    await throttle.acquire("s")
    clock.advance(50)
    await throttle.acquire("s")
    # a fixed minute bucket would allow a call at t=60; the rolling window waits for t=110
    clock.advance(10)
    waited = await throttle.acquire("s")
    assert waited == 0  # the first call (t=0) is a full window old at t=60
    assert throttle.delay("s", clock()) == 50


async def test_shops_do_not_share_a_budget() -> None:
    clock = FakeClock(0)
    throttle = ShopThrottle(1, window_seconds=60, margin_seconds=0, clock=clock, sleep=clock.sleep)
    assert await throttle.acquire("a") == 0
    assert await throttle.acquire("b") == 0
    assert throttle.delay("a", clock()) == 60


async def test_random_spaced_calls_never_exceed_the_limit() -> None:
    import random

    rng = random.Random(7)
    clock = FakeClock(0)
    throttle = ShopThrottle(5, window_seconds=10, margin_seconds=0, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(200):
        clock.advance(rng.choice([0, 0, 0.1, 1, 3, 7]))
        await throttle.acquire("s")
        times.append(clock())
    assert max_in_any_window(times, 10) <= 5


def test_forget_idle_drops_shops_without_recent_calls_and_keeps_active_ones() -> None:
    clock = FakeClock(0)
    throttle = ShopThrottle(1, window_seconds=60, margin_seconds=0, clock=clock, sleep=clock.sleep)
    throttle.record("idle", 0)
    throttle.record("active", 30)
    assert throttle.forget_idle(61) == 1
    assert throttle.delay("active", 61) == pytest.approx(29)  # its call still counts
    assert throttle.forget_idle(61) == 0


async def test_acquire_uses_real_sleep_by_default() -> None:
    loop = asyncio.get_running_loop()
    throttle = ShopThrottle(1, window_seconds=0.2, margin_seconds=0, clock=loop.time)
    await throttle.acquire("s")
    waited = await throttle.acquire("s")
    assert waited >= 0.15


def test_default_margin_keeps_calls_a_little_more_than_a_window_apart() -> None:
    clock = FakeClock()
    throttle = ShopThrottle(2, window_seconds=60, clock=clock, sleep=clock.sleep)
    throttle.record("s", clock())
    throttle.record("s", clock())
    # Shopee's window is 60 s; the throttle waits one extra second for network jitter
    assert throttle.delay("s", clock() + 60) == pytest.approx(1.0)
    assert throttle.delay("s", clock() + 61) == 0
