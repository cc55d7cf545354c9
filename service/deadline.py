"""`Deadlines().timeout_at(deadline)`: asyncio.timeout_at's semantics, one timer for all of them.

asyncio.timeout arms and disarms an event-loop timer every time it is used: about 6-8 µs
under uvloop (docs/benchmarks.md), and the ingest used two per push. Here a guard goes
into a bucket of TICK seconds, and one timer per event loop, re-armed every TICK seconds
while any bucket is left, cancels the tasks whose deadline has passed. A guard never
fires early and up to 2 * TICK late, which is nothing against a budget of seconds.

Deadlines are `time.monotonic()` seconds. As with asyncio.timeout, the guard that fired
turns the task's CancelledError into TimeoutError on its way out, and guards nest. A wait
on futures needs no guard: the ingest's Kafka batches are entries of their own (`add`) and
fail their pushes' futures with TimeoutError.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Protocol

TICK = 0.02

_WAITING, _FIRED, _DONE = 0, 1, 2  # a guard's states


class Guard:
    """`async with timeout_at(deadline):` (asyncio.Timeout's protocol, without reschedule)."""

    __slots__ = ("_bucket", "_cancelling", "_owner", "_state", "_task", "deadline")

    def __init__(self, owner: Deadlines, deadline: float) -> None:
        self._owner = owner
        self.deadline = deadline
        self._state = _WAITING
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._bucket: set[Entry] | None = None

    async def __aenter__(self) -> Guard:
        task = asyncio.current_task(self._owner.running_loop())
        if task is None:
            raise RuntimeError("timeout_at() must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._bucket = self._owner.add(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        fired, self._state = self._state == _FIRED, _DONE
        task, self._task = self._task, None
        if self._bucket is not None:
            self._bucket.discard(self)  # now, while it is in the cache, rather than when swept
            self._bucket = None
        if fired and task is not None and task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
        return None

    def fire(self) -> None:
        if self._state == _WAITING and self._task is not None:
            self._state = _FIRED
            self._task.cancel()


class Entry(Protocol):
    """What Deadlines keeps: a guard, or anything else to call once its deadline has passed."""

    deadline: float

    def fire(self) -> None: ...


class Deadlines:
    """Guards of the running loop, in buckets of TICK seconds, and the one timer that sweeps them.

    Buckets rather than a heap: most guards exit long before their deadline, and a bucket
    (a set) costs them one add when they enter and one discard when they leave (a heap
    entry cost a pop with tuple comparisons, measured at 3.5% of the ingest's CPU; leaving
    the entry for the sweep to look at, seconds later and out of the cache, cost 5% in a
    profile of serve).
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buckets: dict[int, set[Entry]] = {}
        self._swept = 0  # every bucket up to this one has been swept
        self._sweeping = False  # a sweep is scheduled

    def timeout_at(self, deadline: float) -> Guard:
        """Cancel the current task at `deadline` (time.monotonic()); TimeoutError out of the block."""
        return Guard(self, deadline)

    def running_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, remembered: on Python 3.11 asyncio.get_running_loop() and
        asyncio.current_task() make a getpid() system call each (measured at 2-3 µs apiece
        under load), and a push took four. One loop runs at a time, in one thread."""
        loop = self._loop
        if loop is None or not loop.is_running():
            loop = asyncio.get_running_loop()  # a new loop (tests start several): the old one's guards are gone
            self._loop, self._buckets, self._swept = loop, {}, int(time.monotonic() / TICK)
            self._sweeping = False
        return loop

    def add(self, guard: Entry) -> set[Entry]:
        """Call `guard.fire()` once its deadline has passed (never before, up to 2 * TICK
        after), unless it is discarded from the bucket returned before then."""
        loop = self.running_loop()
        slot = max(int(guard.deadline / TICK) + 1, self._swept + 1)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            if not self._sweeping:
                self._sweeping = True
                loop.call_later(TICK, self._sweep, loop)
        bucket.add(guard)
        return bucket

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return
        now = int(time.monotonic() / TICK)
        buckets = self._buckets
        for slot in range(self._swept + 1, now + 1):
            for guard in buckets.pop(slot, ()):
                guard.fire()
        self._swept = max(self._swept, now)
        self._sweeping = bool(buckets)
        if self._sweeping:
            loop.call_later(TICK, self._sweep, loop)
