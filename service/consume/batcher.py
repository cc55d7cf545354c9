"""Per-shop batches, in memory and without I/O (the clock is passed in).

A shop's batch is flushed when it holds `max_size` distinct order SNs, or `timeout_seconds`
after its first record, whichever comes first. The same SN twice keeps the record with the
newest update_time (ties: the later one), but every record and offset stays in the batch:
offsets are committed only once the whole batch is durable, and a dead letter is written
for each original record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from service.records import OrderRecord
from service.types import Partition


@dataclass(frozen=True, slots=True)
class Item:
    """One Kafka record: where it came from, and the order record it carried."""

    partition: Partition
    offset: int
    record: OrderRecord


def _newer(candidate: OrderRecord, current: OrderRecord) -> bool:
    """Whether `candidate` (seen later) supersedes `current` for the same order."""
    if candidate.update_time is None:
        return current.update_time is None
    return current.update_time is None or candidate.update_time >= current.update_time


@dataclass(slots=True)
class Batch:
    shop_id: str
    opened_at: float
    items: list[Item] = field(default_factory=list)
    latest: dict[str, OrderRecord] = field(default_factory=dict)
    #: how many times this batch has been handed back for a later retry
    requeues: int = 0

    def add(self, item: Item) -> None:
        self.items.append(item)
        current = self.latest.get(item.record.order_sn)
        if current is None or _newer(item.record, current):
            self.latest[item.record.order_sn] = item.record

    @property
    def order_sns(self) -> list[str]:
        return list(self.latest)

    @property
    def size(self) -> int:
        return len(self.latest)

    def offsets(self) -> Iterator[tuple[Partition, int]]:
        return ((i.partition, i.offset) for i in self.items)

    def partitions(self) -> set[Partition]:
        return {i.partition for i in self.items}

    def without_partitions(self, partitions: set[Partition]) -> Batch | None:
        """This batch minus the records of `partitions` (None when nothing is left)."""
        kept = Batch(self.shop_id, self.opened_at, requeues=self.requeues)
        for item in self.items:
            if item.partition not in partitions:
                kept.add(item)
        return kept if kept.items else None


class Batcher:
    def __init__(self, *, max_size: int, timeout_seconds: float) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.timeout_seconds = timeout_seconds
        self._open: dict[str, Batch] = {}

    def add(self, item: Item, now: float) -> Batch | None:
        """Add a record; return the shop's batch when this record filled it."""
        shop = item.record.shop_id
        batch = self._open.get(shop)
        if batch is None:
            batch = self._open[shop] = Batch(shop, now)
        batch.add(item)
        if batch.size >= self.max_size:
            return self._open.pop(shop)
        return None

    def due(self, now: float) -> list[Batch]:
        """Remove and return the batches whose timeout has passed, oldest first."""
        ready = [b for b in self._open.values() if now - b.opened_at >= self.timeout_seconds]
        for batch in ready:
            del self._open[batch.shop_id]
        return sorted(ready, key=lambda b: b.opened_at)

    def next_deadline(self) -> float | None:
        if not self._open:
            return None
        return min(b.opened_at for b in self._open.values()) + self.timeout_seconds

    def drop_partitions(self, partitions: set[Partition]) -> int:
        """Forget the records of revoked partitions; return how many were dropped."""
        dropped = 0
        for shop, batch in list(self._open.items()):
            kept = batch.without_partitions(partitions)
            dropped += len(batch.items) - (len(kept.items) if kept else 0)
            if kept is None:
                del self._open[shop]
            else:
                self._open[shop] = kept
        return dropped
