"""Which offsets are safe to commit, per partition (pure, no I/O).

Kafka commits a position, not a set: committing N says "everything before N is done".
Records finish out of order (batches of different shops share a partition), so the
position to commit is the lowest offset whose outcome (a row or a dead letter) is not yet
durable. Everything from there on is redelivered after a crash or a rebalance, which the
idempotent upsert makes harmless.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from service.types import Partition


class _PartitionLog:
    __slots__ = ("done", "last", "pending")

    def __init__(self) -> None:
        self.pending: deque[int] = deque()  # offsets in fetch order, not yet committable
        self.done: set[int] = set()
        self.last: int | None = None  # highest offset tracked


class OffsetTracker:
    def __init__(self) -> None:
        self._logs: dict[Partition, _PartitionLog] = {}
        self._committed: dict[Partition, int] = {}

    def track(self, partition: Partition, offset: int) -> None:
        """A record was fetched; its outcome is not durable yet."""
        log = self._logs.get(partition)
        if log is None:
            log = self._logs[partition] = _PartitionLog()
        if log.last is not None and offset <= log.last:
            return  # refetched after a seek: already tracked
        log.pending.append(offset)
        log.last = offset

    def done(self, offsets: Iterable[tuple[Partition, int]]) -> None:
        """These records' outcomes are durable."""
        for partition, offset in offsets:
            log = self._logs.get(partition)
            if log is not None and log.pending and log.last is not None and log.pending[0] <= offset <= log.last:
                log.done.add(offset)

    def committable(self) -> dict[Partition, int]:
        """Positions to commit now: only those that moved since the last `committed()`."""
        result: dict[Partition, int] = {}
        for partition, log in self._logs.items():
            while log.pending and log.pending[0] in log.done:
                log.done.discard(log.pending.popleft())
            if log.last is None:
                continue
            position = log.pending[0] if log.pending else log.last + 1
            if self._committed.get(partition) != position:
                result[partition] = position
        return result

    def committed(self, positions: dict[Partition, int]) -> None:
        """Kafka accepted these positions."""
        self._committed.update(positions)

    def forget(self, partitions: Iterable[Partition]) -> None:
        """The partitions were revoked: a new owner starts from the committed position."""
        for partition in partitions:
            self._logs.pop(partition, None)
            self._committed.pop(partition, None)

    @property
    def pending(self) -> int:
        """Records fetched whose outcome is not durable yet (the backpressure measure)."""
        return sum(len(log.pending) - len(log.done) for log in self._logs.values())
