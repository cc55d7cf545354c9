"""The consumer benchmark's table and its description (bench/consumer.py measures)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.drain import Timed
from bench.report import Row, judged, mib, num, target_missed

FLOOR_TARGET = 0.7  # of the I/O floor (bench/minimal.py)
RSS_KIB = 300 * 1024  # the consumer's memory target


@dataclass
class Drain:
    total: int
    rate: float  # orders/s from the first row visible to the last
    wall: float  # seconds from the consumer's start to the last row
    cpu: float
    peak_rss_kib: int
    dead: int
    calls: object
    profile: Path | None


@dataclass
class Ceiling:
    rate: float
    seconds: float


def judge(
    d: Drain, written: int, floor: Timed, ceiling: Ceiling, mem: tuple[int, int, int, int] | None, shops: int
) -> list[Row]:
    ratio = d.rate / floor.rate if floor.rate else 0.0
    rows = [
        judged(
            f"orders/s persisted ({d.total:,} records, {shops} shops) vs the I/O floor",
            num(d.rate),
            f"≥ {FLOOR_TARGET} × floor",
            ratio >= FLOOR_TARGET,
            num(floor.rate),
            f"{ratio:.2f}",
        ),
        Row(
            "orders/s persisted vs the plain-upsert ceiling",
            num(d.rate),
            num(ceiling.rate),
            f"{d.rate / ceiling.rate:.2f}" if ceiling.rate else "-",
        ),
        Row("drain time from start (incl. group join): consumer, floor", f"{d.wall:.1f} s", f"{floor.wall:.1f} s"),
        judged(
            "rows written / dead letters",
            f"{written:,} / {d.dead}",
            f"{d.total:,} / 0",
            written == d.total and not d.dead,
        ),
        Row(
            "CPU per order: consumer, floor", f"{d.cpu / d.total * 1e6:,.0f} µs", f"{floor.cpu / d.total * 1e6:,.0f} µs"
        ),
        judged("peak RSS of consume, draining (VmHWM)", mib(d.peak_rss_kib), "≤ 300 MB", 0 < d.peak_rss_kib <= RSS_KIB),
    ]
    if mem is not None:
        rss, pending, mem_shops, per = mem
        metric = f"peak RSS of consume, {mem_shops:,} shops × {per} pending records (VmHWM)"
        rows.append(judged(metric, mib(rss), "≤ 300 MB", 0 < rss <= RSS_KIB and pending >= mem_shops * per))
    return rows


def method(args: argparse.Namespace, d: Drain, written: int, floor: Timed) -> str:
    calls = orjson.dumps(d.calls).decode() if d.calls is not None else "n/a"
    text = f"""Drain: {d.total:,} order records ({args.shops} shops, interleaved) preloaded into a fresh
12-partition topic, then `python -m service consume` with BATCH_MAX_SIZE=50,
BATCH_TIMEOUT_SECONDS=1, MAX_CONCURRENCY=10 and the throttle out of the way
(SHOP_RATE_LIMIT_PER_MINUTE=1000000), against the sandbox Shopee (no added latency, no
rate limit) and a fresh database. Orders/s: rows per second from the first upsert to the
last, by the rows' processed_at (the Postgres clock; the row count is polled only every
250 ms, to know when to stop). I/O floor: `python -m bench.minimal` on the same topic,
timed the same way into another fresh database: it reads the records, makes one
get_order_detail call per 50 order SNs of a shop (with the consumer's optional fields)
and one upsert per batch, 10 batches at once, with the consumer's own Shopee client and
SQL, and none of its batching timers,
throttle, retries, offsets or dead letters. Ceiling: the same {written:,} rows upserted
by `Store.upsert_orders` (one transaction per batch of 50 of one shop), 10 batches at
once: no Kafka, no HTTP. Memory: {args.mem_shops:,} shops × {args.mem_per_shop} records (every shop
a partial batch, BATCH_TIMEOUT_SECONDS=600) read by a fresh consumer until all are
pending, then VmHWM. Sandbox calls during the drain: {calls}.
"""
    ratio = d.rate / floor.rate if floor.rate else 0.0
    return text + target_missed("consumer/floor", ratio, FLOOR_TARGET, "consume", d.profile)
