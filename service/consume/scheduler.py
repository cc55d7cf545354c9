"""Which shop batch runs next (pure: no I/O, the time is passed in).

Rules, in order: at most one batch per shop in flight, so a shop's batches complete in
offset order; at most `max_concurrency` batches in flight; a batch handed back for a
later retry waits until its time and goes first in its shop's queue; a shop whose call
budget is spent is passed over instead of holding a concurrency slot while it waits;
shops take turns (round-robin), oldest queue first.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from service.consume.batcher import Batch
from service.types import Partition


class CallBudget(Protocol):
    def delay(self, shop: str, now: float) -> float:
        """Seconds until `shop` may make another Shopee call (0 when it may now)."""
        ...


class Scheduler:
    def __init__(self, *, max_concurrency: int, budget: CallBudget) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.max_concurrency = max_concurrency
        self._budget = budget
        self._ready: dict[str, deque[Batch]] = {}  # insertion order is the round-robin order
        self._not_before: dict[str, float] = {}
        self._running: set[str] = set()

    def add(self, batch: Batch) -> None:
        """A new batch, last in its shop's queue."""
        self._ready.setdefault(batch.shop_id, deque()).append(batch)

    def retry(self, batch: Batch, not_before: float) -> None:
        """A batch handed back: first in its shop's queue, and its shop waits until `not_before`."""
        self._ready.setdefault(batch.shop_id, deque()).appendleft(batch)
        self._not_before[batch.shop_id] = max(self._not_before.get(batch.shop_id, 0.0), not_before)

    def start(self, now: float) -> list[Batch]:
        """The batches to start now; each one's shop counts as in flight until `finished`."""
        started: list[Batch] = []
        for shop in list(self._ready):
            if len(self._running) >= self.max_concurrency:
                break
            if shop in self._running or self._not_before.get(shop, 0.0) > now:
                continue
            if self._budget.delay(shop, now) > 0:
                continue
            queue = self._ready.pop(shop)
            started.append(queue.popleft())
            if queue:
                self._ready[shop] = queue  # re-inserted last: the other shops go first next time
            self._not_before.pop(shop, None)
            self._running.add(shop)
        return started

    def finished(self, shop: str) -> None:
        """The shop's batch in flight is done (or handed back through `retry`)."""
        self._running.discard(shop)

    def drop_partitions(self, partitions: set[Partition]) -> int:
        """Forget queued records of revoked partitions; return how many were dropped."""
        dropped = 0
        for shop in list(self._ready):
            queue = self._ready[shop]
            kept = [b for b in (batch.without_partitions(partitions) for batch in queue) if b is not None]
            dropped += sum(len(b.items) for b in queue) - sum(len(b.items) for b in kept)
            if kept:
                self._ready[shop] = deque(kept)
            else:
                del self._ready[shop]
                self._not_before.pop(shop, None)
        return dropped

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def queued(self, shop: str) -> int:
        """Batches of `shop` waiting to start."""
        return len(self._ready.get(shop, ()))
