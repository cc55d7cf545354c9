"""What the console changes: replays (through service.replay, the CLI's code path), reason
acknowledgements, and the audit row every action writes.

A replay first claims its letters in console_dead_letter_replays (INSERT ... ON CONFLICT
DO NOTHING RETURNING): only the letters this claim won are replayed, so a second click,
or the same click on another replica, replays nothing twice. It then runs in the
background as a Job whose progress the page polls.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from service.replay import Filters, replay
from service.settings import Settings

log = logging.getLogger(__name__)


async def write_audit(
    pool: asyncpg.Pool, actor: str, action: str, filter_: dict[str, Any], count: int, detail: str = ""
) -> None:
    await pool.execute(
        "INSERT INTO console_audit (actor, action, filter, count, detail) VALUES ($1, $2, $3::jsonb, $4, $5)",
        actor,
        action,
        orjson.dumps(filter_).decode(),
        count,
        detail,
    )


async def acknowledge(pool: asyncpg.Pool, topic: str, reason: str, actor: str) -> None:
    await pool.execute(
        "INSERT INTO console_reason_acks (topic, reason, acknowledged_by) VALUES ($1, $2, $3) "
        "ON CONFLICT (topic, reason) DO UPDATE SET acknowledged_at = now(), acknowledged_by = EXCLUDED.acknowledged_by",
        topic,
        reason,
        actor,
    )
    await write_audit(pool, actor, "acknowledge", {"reason": reason}, 1)


@dataclass(slots=True)
class Job:
    id: int
    actor: str
    filter: dict[str, Any]
    total: int
    started_at: float
    replayed: int = 0
    state: str = "running"  # running | done | failed
    error: str | None = None
    finished_at: float | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)


class Replayer:
    """Runs replay jobs in the background; owns their tasks (cancelled on stop)."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, topic: str) -> None:
        self._settings = settings
        self._pool = pool
        self._topic = topic
        self._ids = itertools.count(1)
        self.jobs: dict[int, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def claim(self, positions: list[tuple[int, int]], actor: str) -> list[tuple[int, int]]:
        if not positions:
            return []
        rows = await self._pool.fetch(
            'INSERT INTO console_dead_letter_replays (topic, partition, "offset", replayed_by) '
            "SELECT $1, p, o, $4 FROM unnest($2::int[], $3::bigint[]) AS t(p, o) "
            'ON CONFLICT DO NOTHING RETURNING partition, "offset"',
            self._topic,
            [p for p, _ in positions],
            [o for _, o in positions],
            actor,
        )
        return [(r["partition"], r["offset"]) for r in rows]

    async def start(self, positions: list[tuple[int, int]], actor: str, filter_: dict[str, Any]) -> Job:
        """Claim `positions` and replay the claimed ones in the background; audit the action."""
        claimed = await self.claim(positions, actor)
        job = Job(next(self._ids), actor, filter_, len(claimed), time.time())
        self.jobs[job.id] = job
        await write_audit(
            self._pool,
            actor,
            "replay",
            filter_,
            len(claimed),
            f"job {job.id}; {len(positions) - len(claimed)} already replayed",
        )
        if claimed:
            task = asyncio.create_task(self._run(job, frozenset(claimed)), name=f"console-replay-{job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            job.state, job.finished_at = "done", time.time()
        return job

    async def _run(self, job: Job, positions: frozenset[tuple[int, int]]) -> None:
        def progress(line: dict[str, Any]) -> None:
            if line.get("action") == "replayed":
                job.replayed += 1
            job.lines.append(line)

        try:
            await replay(self._settings, Filters(positions=positions), source_topic=self._topic, write=progress)
            job.state = "done"
        except Exception as exc:
            log.exception("console replay failed", extra={"job": job.id})
            job.state, job.error = "failed", type(exc).__name__
            # what was not replayed may be tried again
            await self._pool.execute(
                'DELETE FROM console_dead_letter_replays WHERE topic = $1 AND (partition, "offset") IN '
                "(SELECT * FROM unnest($2::int[], $3::bigint[]))",
                self._topic,
                [p for p, _ in positions],
                [o for _, o in positions],
            )
        finally:
            job.finished_at = time.time()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
