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


async def wait_rows(db_url: str, expected: int, consumer: Process, limit: float) -> tuple[float, int, float]:
    """Poll the row count until `expected`; (first time rows were seen, count then, end time)."""
    conn = await asyncpg.connect(db_url)
    try:
        first_t, first_n = 0.0, 0
        deadline = time.monotonic() + limit
        while True:
            n = int(await conn.fetchval("SELECT count(*) FROM shopee_orders_raw"))
            now = time.perf_counter()
            if n and not first_t:
                first_t, first_n = now, n
            if n >= expected:
                return first_t, first_n, now
            consumer.check_alive()
            consumer.sample_memory()
            if time.monotonic() > deadline:
                fail(f"the consumer wrote {n:,} of {expected:,} rows in {limit:.0f} s; log {consumer.log_path}")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def sandbox_stats(url: str) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url + "/sandbox/stats")
        return response.json() if response.status_code == 200 else {}


@dataclass
class Timed:
    rate: float  # rows/s from the first row visible to the last
    wall: float  # seconds from the process's start to the last row
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
    """Start `argv`, poll the row count until `total`; rows/s from the first row to the last."""
    with Process(name, argv, env) as process:
        started = time.perf_counter()
        spying = Spy(process.pid, name, max_seconds=limit) if spy else None
        try:
            cpu0 = cpu_seconds(process.pid)
            first_t, first_n, end_t = asyncio.run(wait_rows(db_url, total, process, limit))
            cpu = cpu_seconds(process.pid) - cpu0
        finally:
            profile = spying.stop() if spying is not None else None
        rss = process.sample_memory()
        stages = asyncio.run(stage_means(metrics_url)) if metrics_url else {}
    rate = (total - first_n) / (end_t - first_t) if end_t > first_t else 0.0
    return Timed(rate, end_t - started, cpu, rss, profile, stages)
