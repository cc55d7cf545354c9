"""Runs the sweeps: each under its advisory lock, each recorded in recover_runs.

`once()` runs one pass of each kind; `forever()` runs each kind on its own interval until
stopped. A copy that does not get a kind's lock logs it and moves on: several copies
(a CronJob overlapping a Deployment, two replicas) are harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from service.recover.metrics import RecoverMetrics
from service.recover.store import RecoverStore, RunTotals

log = logging.getLogger(__name__)


class Sweep(Protocol):
    kind: str

    async def run(self) -> RunTotals: ...


@dataclass(frozen=True, slots=True)
class SweepResult:
    kind: str
    outcome: str  # ok | errors | failed | locked
    totals: RunTotals | None = None


class Runner:
    def __init__(
        self,
        store: RecoverStore,
        metrics: RecoverMetrics,
        sweeps: list[Sweep],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._sweeps = sweeps
        self._clock = clock

    async def sweep(self, sweep: Sweep) -> SweepResult:
        """One sweep of `sweep.kind`, if this process gets its lock."""
        async with self._store.try_lock(sweep.kind) as held:
            if not held:
                log.warning("another recover holds the lock; skipping this sweep", extra={"kind": sweep.kind})
                self._metrics.sweeps.labels(sweep.kind, "locked").inc()
                return SweepResult(sweep.kind, "locked")
            run_id = await self._store.start_run(sweep.kind)
            try:
                totals = await sweep.run()
            except Exception as exc:
                # Nothing unconfirmed is lost: a lost-push page not confirmed comes back,
                # a shop whose checkpoint did not move is compared again.
                log.exception("sweep failed", extra={"kind": sweep.kind})
                totals = RunTotals(errors=1, status="failed", detail=f"{exc.__class__.__name__}: {exc}")
            await self._store.finish_run(run_id, totals)
        self._metrics.sweeps.labels(sweep.kind, totals.status).inc()
        if totals.status == "ok":
            self._metrics.last_success.labels(sweep.kind).set(self._clock())
        log.info(
            "sweep finished",
            extra={
                "kind": sweep.kind,
                "status": totals.status,
                "seen": totals.seen,
                "produced": totals.produced,
                "errors": totals.errors,
                "detail": totals.detail[:500],
            },
        )
        return SweepResult(sweep.kind, totals.status, totals)

    async def once(self) -> list[SweepResult]:
        return [await self.sweep(s) for s in self._sweeps]

    async def forever(self, intervals: dict[str, float], stop: asyncio.Event) -> None:
        """Each kind on its own interval, until `stop` is set."""

        async def loop(sweep: Sweep) -> None:
            while not stop.is_set():
                try:
                    await self.sweep(sweep)
                except Exception:  # e.g. Postgres down: the lock or run log failed; try next time
                    log.exception("sweep could not run", extra={"kind": sweep.kind})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), intervals[sweep.kind])

        await asyncio.gather(*(loop(s) for s in self._sweeps))
