"""Timing a drain: a process that turns the records of a topic into rows, from its start
until every record is a row (the consumer, and the I/O floor in bench/minimal.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from bench.profile import Spy, cpu_seconds
from bench.report import fail
from tests.processes import Process

POLL_SECONDS = 0.25

#: when the rows were written, by Postgres's clock: processed_at is now() of the statement
#: that wrote them; the first statement's rows, and the last statement's start
_SPAN = """
SELECT count(*) FILTER (WHERE processed_at = first) AS first_n,
       extract(epoch FROM max(processed_at) - min(first)) AS span,
       extract(epoch FROM max(processed_at) - $1::timestamptz) AS since_start
FROM shopee_orders_raw, (SELECT min(processed_at) AS first FROM shopee_orders_raw) f
"""


@dataclass
class Written:
    first_n: int  # rows written by the first statement(s)
    span: float  # seconds from the first statement's start to the last one's
    since_start: float  # seconds from the process's start to the last statement's


async def wait_rows(db_url: str, expected: int, drainer: Process, limit: float) -> Written:
    """Poll the row count until `expected`; then when the rows were written, by their processed_at.

    A count(*) over a table growing to ~170 MB costs Postgres ~15 ms of CPU (parallel
    workers included) on the machine it shares with the drainer: polled every 50 ms it
    took a quarter of a core. So the count is only polled to know when to stop, and the
    timing comes from the rows themselves.
    """
    conn = await asyncpg.connect(db_url)
    try:
        started = await conn.fetchval("SELECT clock_timestamp()")
        deadline = time.monotonic() + limit
        while (n := int(await conn.fetchval("SELECT count(*) FROM shopee_orders_raw"))) < expected:
            drainer.check_alive()
            drainer.sample_memory()
            if time.monotonic() > deadline:
                fail(f"{drainer.name} wrote {n:,} of {expected:,} rows in {limit:.0f} s; log {drainer.log_path}")
            await asyncio.sleep(POLL_SECONDS)
        row = await conn.fetchrow(_SPAN, started)
        return Written(int(row["first_n"]), float(row["span"]), float(row["since_start"]))
    finally:
        await conn.close()


async def sandbox_stats(url: str) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url + "/sandbox/stats")
        return response.json() if response.status_code == 200 else {}


@dataclass
class Timed:
    rate: float  # rows/s from the first upsert's start to the last one's (processed_at)
    wall: float  # seconds from the process's start to the last upsert's start
    cpu: float  # the process's CPU seconds meanwhile
    peak_rss_kib: int
    profile: Path | None
    stage_means: dict[str, float]  # seconds per observation of the consumer's stage histograms, if scraped


STAGES = ("consumer_shopee_call_seconds", "consumer_upsert_seconds", "consumer_throttle_wait_seconds")


async def stage_means(metrics_url: str) -> dict[str, float]:
    """Mean seconds per observation of the consumer's stage histograms (all label sets summed)."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(metrics_url)).text
    sums: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        base = name.split("{", 1)[0]
        if base.endswith(("_sum", "_count")) and base.rsplit("_", 1)[0] in STAGES:
            sums[base] = sums.get(base, 0.0) + float(value)
    return {s: sums[s + "_sum"] / sums[s + "_count"] for s in STAGES if sums.get(s + "_count")}


def timed_drain(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    db_url: str,
    total: int,
    limit: float,
    *,
    spy: bool,
    metrics_url: str | None = None,
) -> Timed:
    """Start `argv`, wait until `total` rows; rows/s from the first upsert to the last."""
    with Process(name, argv, env) as process:
        spying = Spy(process.pid, name, max_seconds=limit) if spy else None
        try:
            cpu0 = cpu_seconds(process.pid)
            written = asyncio.run(wait_rows(db_url, total, process, limit))
            cpu = cpu_seconds(process.pid) - cpu0
        finally:
            profile = spying.stop() if spying is not None else None
        rss = process.sample_memory()
        stages = asyncio.run(stage_means(metrics_url)) if metrics_url else {}
    rate = (total - written.first_n) / written.span if written.span > 0 else 0.0
    return Timed(rate, written.since_start, cpu, rss, profile, stages)
