"""The consumer's running tasks: batch workers and dead-letter sends of undecodable records.

The runner's loop starts them, reaps the finished ones on every pass, and on revocation
or shutdown lets them finish within the grace period and cancels the rest (their records
stay uncommitted and are redelivered). A task that finishes sets `wake`, so the loop
starts the next batch at once instead of after its fetch's poll timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from service.consume.batcher import Batch
from service.consume.worker import BatchResult
from service.types import Partition

log = logging.getLogger(__name__)


class WorkerCrashed(RuntimeError):
    """A batch task died of an unexpected error: the consumer stops instead of hanging."""


@dataclass
class Reaped:
    """What finished since the last reap."""

    #: records whose outcome (row or dead letter) is durable
    durable: list[tuple[Partition, int]] = field(default_factory=list)
    #: shops whose batch is no longer in flight
    finished_shops: list[str] = field(default_factory=list)
    #: batches to run again, each after a delay in seconds (0: cancelled, not failed)
    handed_back: list[tuple[Batch, float]] = field(default_factory=list)
    #: the first unexpected error a task died of
    crashed: BaseException | None = None


class InFlight:
    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self._batches: dict[asyncio.Task[BatchResult], Batch] = {}
        self._letters: dict[asyncio.Task[None], tuple[Partition, int]] = {}

    def start_batch(self, batch: Batch, work: Coroutine[Any, Any, BatchResult]) -> None:
        task = asyncio.create_task(work, name=f"batch-{batch.shop_id}")
        task.add_done_callback(self._done)
        self._batches[task] = batch

    def start_letter(self, partition: Partition, offset: int, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"dead-letter-{partition[0]}-{partition[1]}-{offset}")
        task.add_done_callback(self._done)
        self._letters[task] = (partition, offset)

    def _done(self, _: asyncio.Task[Any]) -> None:
        self.wake.set()

    def reap(self) -> Reaped:
        reaped = Reaped()
        for task in [t for t in self._batches if t.done()]:
            batch = self._batches.pop(task)
            reaped.finished_shops.append(batch.shop_id)
            if task.cancelled():
                reaped.handed_back.append((batch, 0.0))
            elif (exc := task.exception()) is not None:
                log.error("batch worker crashed", exc_info=exc, extra={"shop_id": batch.shop_id})
                reaped.crashed = reaped.crashed or exc
            elif (result := task.result()).durable:
                reaped.durable.extend(batch.offsets())
            else:
                batch.requeues += 1
                reaped.handed_back.append((batch, result.retry_in))
        for sent in [t for t in self._letters if t.done()]:
            where = self._letters.pop(sent)
            if sent.cancelled():
                continue  # shutting down or revoked: the record is redelivered
            if (exc := sent.exception()) is not None:
                log.error("dead-letter task crashed", exc_info=exc)
                reaped.crashed = reaped.crashed or exc
            else:
                reaped.durable.append(where)
        return reaped

    def tasks(self, partitions: set[Partition] | None = None) -> set[asyncio.Task[Any]]:
        """Every running task, or only those holding records of `partitions`."""
        if partitions is None:
            return {*self._batches, *self._letters}
        batches = {t for t, b in self._batches.items() if b.partitions() & partitions}
        return batches | {t for t, (p, _) in self._letters.items() if p in partitions}


async def finish_or_abandon(tasks: set[asyncio.Task[Any]], grace_seconds: float) -> None:
    """Let `tasks` finish within `grace_seconds`; cancel and await the rest."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
    for task in pending:
        task.cancel()
    if pending:
        log.warning("abandoned in-flight batches; their records will be redelivered", extra={"batches": len(pending)})
        await asyncio.gather(*pending, return_exceptions=True)
