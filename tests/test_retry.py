"""The consumer's retry policy on a fake clock: attempt cap, backoff with jitter, later rounds."""

from __future__ import annotations

import pytest

from service.consume.retry import Exhausted, RetryPolicy
from service.errors import GatewayError, ShopeePermanent, ShopeeRateLimited, ShopeeTransient
from tests.fakes import FakeClock


def policy(clock: FakeClock, *, jitter: float = 0.0, attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, base_seconds=1, max_seconds=5, sleep=clock.sleep, jitter=lambda: jitter)


class Failing:
    def __init__(self, *errors: GatewayError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_backoff_doubles_up_to_the_ceiling_and_jitter_spreads_the_upper_half() -> None:
    low, high = policy(FakeClock(), jitter=0.0), policy(FakeClock(), jitter=1.0)
    error = ShopeeTransient("500")
    assert [low.backoff_seconds(n, error) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    assert [high.backoff_seconds(n, error) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_retry_after_is_honoured_up_to_the_ceiling() -> None:
    p = policy(FakeClock())
    assert p.backoff_seconds(1, ShopeeRateLimited("429", retry_after_seconds=3)) == 3
    assert p.backoff_seconds(1, ShopeeRateLimited("429", retry_after_seconds=600)) == 5


async def test_retriable_errors_are_retried_until_the_attempts_are_spent() -> None:
    clock = FakeClock()
    step = Failing(*(ShopeeTransient("500") for _ in range(4)))
    with pytest.raises(Exhausted) as raised:
        await policy(clock).run(step)
    assert step.calls == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert isinstance(raised.value.last, ShopeeTransient)


async def test_a_permanent_error_is_not_retried() -> None:
    clock = FakeClock()
    step = Failing(ShopeePermanent("error_param"))
    with pytest.raises(ShopeePermanent):
        await policy(clock).run(step)
    assert (step.calls, clock.sleeps) == (1, [])


async def test_run_until_done_waits_the_later_delay_between_rounds() -> None:
    clock = FakeClock()
    step = Failing(*(ShopeeTransient("500") for _ in range(3)))
    assert await policy(clock, attempts=2).run_until_done(step) == "done"
    assert clock.sleeps == [0.5, 5, 0.5]  # round 1: one backoff, then later_seconds; round 2 succeeds
