"""service.deadline.timeout_at: asyncio.timeout_at's behaviour with one shared timer."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.deadline import TICK, Deadlines

deadlines = Deadlines()
timeout_at = deadlines.timeout_at


async def test_a_block_past_its_deadline_raises_timeout_error() -> None:
    deadline = time.monotonic() + 0.05
    with pytest.raises(TimeoutError):
        async with timeout_at(deadline):
            await asyncio.Event().wait()  # never set
    assert time.monotonic() >= deadline  # never early


async def test_a_block_done_in_time_is_not_cancelled_later() -> None:
    async with timeout_at(time.monotonic() + 2 * TICK):
        await asyncio.sleep(0)
    await asyncio.sleep(5 * TICK)  # its bucket is swept meanwhile: nothing may cancel us
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_the_inner_guard_that_fires_is_the_one_that_raises() -> None:
    outer_left = False
    async with timeout_at(time.monotonic() + 30):
        with pytest.raises(TimeoutError):
            async with timeout_at(time.monotonic() + 0.05):
                await asyncio.Event().wait()
        outer_left = True
    assert outer_left


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    async def waits() -> None:
        async with timeout_at(time.monotonic() + 30):
            await asyncio.Event().wait()

    task = asyncio.create_task(waits())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_many_guards_each_fire_at_their_own_deadline() -> None:
    start = time.monotonic()
    fired: list[int] = []

    async def one(n: int) -> None:
        try:
            async with timeout_at(start + 0.02 * n):
                await asyncio.sleep(0.02 * n + 10 if n % 2 else 0)  # odd ones overstay; even ones leave
        except TimeoutError:
            fired.append(n)

    await asyncio.gather(*(one(n) for n in range(1, 11)))
    assert sorted(fired) == [1, 3, 5, 7, 9]


async def test_guards_on_one_loop_ask_asyncio_for_the_loop_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # On Python 3.11 each asyncio.get_running_loop() is a getpid() system call.
    asked: list[int] = []
    real = asyncio.get_running_loop

    def counted() -> asyncio.AbstractEventLoop:
        asked.append(1)
        return real()

    fresh = Deadlines()
    monkeypatch.setattr(asyncio, "get_running_loop", counted)
    for _ in range(3):
        async with fresh.timeout_at(time.monotonic() + 30):
            await asyncio.sleep(0)
    assert len(asked) == 1


class _Call:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired_at: float | None = None

    def fire(self) -> None:
        self.fired_at = time.monotonic()


async def test_an_entry_is_called_once_its_deadline_has_passed_never_before() -> None:
    entries = [_Call(time.monotonic() + 0.01 * n) for n in (5, 1, 3)]
    for entry in entries:
        deadlines.add(entry)
    await asyncio.sleep(0.05 + 3 * TICK)
    assert all(e.fired_at is not None and e.fired_at >= e.deadline for e in entries)


async def test_an_entry_discarded_from_its_bucket_is_not_called() -> None:
    kept, discarded = _Call(time.monotonic() + 0.02), _Call(time.monotonic() + 0.02)
    deadlines.add(kept)
    deadlines.add(discarded).discard(discarded)
    await asyncio.sleep(0.02 + 3 * TICK)
    assert (kept.fired_at is not None, discarded.fired_at) == (True, None)
