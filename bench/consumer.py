"""`make bench-consumer`: orders/s that `python -m service consume` persists, against a
plain-upsert ceiling, and the consumer's memory with many shops holding partial batches.

1. Drain: RECORDS order records for SHOPS shops are preloaded into a fresh topic; the
   sandbox Shopee answers with no added latency and no rate limit; the consumer
   (BATCH_MAX_SIZE=50, MAX_CONCURRENCY=10, throttle out of the way) drains them into a
   fresh database. Orders/s = rows visible per second while it drains.
2. Ceiling: the very rows it wrote, upserted again into another fresh database in batches
   of 50 with the consumer's own statement (service.consume.store.Store.upsert_orders, one
   transaction per batch, the same concurrency): no Kafka, no HTTP.
3. Memory: a fresh topic with MEM_SHOPS shops x MEM_PER_SHOP records (every shop holds a
   partial batch; the batch timeout is far away), read by a consumer until all of them are
   pending; its peak RSS (VmHWM).

    scripts/with-services.sh 19092 55433 .venv/bin/python -m bench.consumer
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.ceiling import ceiling, read_rows
from bench.profile import Spy, cpu_seconds
from bench.report import Row, fail, judged, mib, num, report, say, target_missed
from bench.setup import consumer_env, create_topics, fresh_database, migrate, prepare, start_sandbox, topic_records
from service.records import OrderRecord
from tests.processes import Process, free_port, service_argv

SHOPS = 500
RECORDS = 100_000
SHOP_BASE = 700_000
PARTITIONS = 12
CONCURRENCY = 10
BATCH = 50
RATIO_TARGET = 0.5
MEM_SHOPS = 10_000
MEM_PER_SHOP = 20
MEM_SHOP_BASE = 5_000_000
RSS_KIB = 300 * 1024  # the consumer's memory target
DRAIN_LIMIT_SECONDS = 300


def records_for(shops: Sequence[int], per_shop: int, prefix: str) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs, shops interleaved the way pushes from many shops arrive."""
    now_ms = int(time.time() * 1000)
    out = []
    for k in range(per_shop):
        for shop in shops:
            sn = f"{prefix}{shop % 100_000:05d}{k:05d}"
            record = OrderRecord(
                shop_id=str(shop),
                order_sn=sn,
                order_status="READY_TO_SHIP",
                timestamp=now_ms,
                update_time=now_ms // 1000 - 60,
                event_id=hashlib.sha256(f"{shop}|{sn}".encode()).hexdigest()[:32],
            )
            out.append((record.key.encode(), record.encode()))
    return out


async def preload(bootstrap: str, topic: str, pairs: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for i in range(0, len(pairs), 5000):
            futures = [await producer.send(topic, value=v, key=k) for k, v in pairs[i : i + 5000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def drain_env(db_url: str, bootstrap: str, topic: str, sandbox: str, metrics_port: int, **extra: str) -> dict[str, str]:
    """The consumer's settings for these runs: production batching, the throttle out of the way."""
    return consumer_env(
        db_url,
        bootstrap,
        topic,
        sandbox,
        BATCH_MAX_SIZE=str(BATCH),
        MAX_CONCURRENCY=str(CONCURRENCY),
        SHOP_RATE_LIMIT_PER_MINUTE="1000000",
        CONSUMER_METRICS_PORT=str(metrics_port),
        **extra,
    )


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


async def metric_value(url: str, name: str) -> float | None:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(url)).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def sandbox_stats(url: str) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url + "/sandbox/stats")
        return response.json() if response.status_code == 200 else {}


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


def drain(args: argparse.Namespace, bootstrap: str, db_url: str, topic: str) -> Drain:
    """Preload the topic, start the consumer, time it until every record is a row."""
    per_shop = max(1, args.records // args.shops)
    total = per_shop * args.shops
    sandbox, sandbox_url = start_sandbox(db_url, args.shops, SHOP_BASE)
    try:
        pairs = records_for(list(range(SHOP_BASE, SHOP_BASE + args.shops)), per_shop, "BC")
        took = asyncio.run(preload(bootstrap, topic, pairs))
        say(f"bench-consumer: preloaded {total:,} records for {args.shops} shops into {topic} in {took:.1f} s")
        env = drain_env(db_url, bootstrap, topic, sandbox_url, free_port(), BATCH_TIMEOUT_SECONDS="1")
        with Process("consume", service_argv("consume"), env) as consumer:
            started = time.perf_counter()
            spy = Spy(consumer.pid, "consume", max_seconds=DRAIN_LIMIT_SECONDS)
            try:
                cpu0 = cpu_seconds(consumer.pid)
                first_t, first_n, end_t = asyncio.run(wait_rows(db_url, total, consumer, DRAIN_LIMIT_SECONDS))
                cpu = cpu_seconds(consumer.pid) - cpu0
            finally:
                profile = spy.stop()
            consumer.check_alive()
            rss = consumer.sample_memory()
        stats = asyncio.run(sandbox_stats(sandbox_url))
    finally:
        sandbox.stop()
    dead = asyncio.run(topic_records(bootstrap, topic + ".dlq"))
    rate = (total - first_n) / (end_t - first_t) if end_t > first_t else 0.0
    totals = stats.get("totals")
    keys = ("calls", "order_sns_requested", "token_refreshes", "rate_limited", "errors")
    calls = {k: totals.get(k) for k in keys} if isinstance(totals, dict) else None
    say(
        f"  consumer: {total:,} rows in {end_t - started:.1f} s ({rate:,.0f} orders/s while draining); {dead} dead letters"
    )
    return Drain(total, rate, end_t - started, cpu, rss, dead, calls, profile)


def judge(
    d: Drain, written: int, ceiling_rate: float, ceiling_s: float, mem: tuple[int, int, int, int] | None, shops: int
) -> list[Row]:
    ratio = d.rate / ceiling_rate if ceiling_rate else 0.0
    persisted = f"orders/s persisted ({d.total:,} records, {shops} shops)"
    rows = [
        judged(
            persisted,
            num(d.rate),
            f"≥ {RATIO_TARGET} × ceiling",
            ratio >= RATIO_TARGET,
            num(ceiling_rate),
            f"{ratio:.2f}",
        ),
        Row("drain time from consumer start (incl. group join)", f"{d.wall:.1f} s", f"{ceiling_s:.1f} s"),
        judged(
            "rows written / dead letters",
            f"{written:,} / {d.dead}",
            f"{d.total:,} / 0",
            written == d.total and not d.dead,
        ),
        Row("consumer CPU per order", f"{d.cpu / d.total * 1e6:,.0f} µs"),
        judged("peak RSS of consume, draining (VmHWM)", mib(d.peak_rss_kib), "≤ 300 MB", 0 < d.peak_rss_kib <= RSS_KIB),
    ]
    if mem is not None:
        rss, pending, mem_shops, per = mem
        metric = f"peak RSS of consume, {mem_shops:,} shops × {per} pending records (VmHWM)"
        rows.append(judged(metric, mib(rss), "≤ 300 MB", 0 < rss <= RSS_KIB and pending >= mem_shops * per))
    return rows


def method(args: argparse.Namespace, d: Drain, written: int, ratio: float) -> str:
    text = f"""Drain: {d.total:,} order records ({args.shops} shops, interleaved) preloaded into a fresh
{PARTITIONS}-partition topic, then `python -m service consume` with BATCH_MAX_SIZE={BATCH},
BATCH_TIMEOUT_SECONDS=1, MAX_CONCURRENCY={CONCURRENCY} and the throttle out of the way
(SHOP_RATE_LIMIT_PER_MINUTE=1000000), against the sandbox Shopee (no added latency, no
rate limit) and a fresh database. Orders/s counts rows becoming visible (polled every 50 ms)
from the first row to the last. Ceiling: the same {written:,} rows upserted into another fresh
database by `Store.upsert_orders` (one transaction per batch of {BATCH} of one shop),
{CONCURRENCY} batches at once: no Kafka, no HTTP. Memory: {args.mem_shops:,} shops × {args.mem_per_shop}
records (every shop a partial batch, BATCH_TIMEOUT_SECONDS=600) read by a fresh consumer
until all are pending, then VmHWM. Sandbox calls during the drain:
{orjson.dumps(d.calls).decode() if d.calls is not None else "n/a"}.
"""
    return text + target_missed("consumer/ceiling", ratio, RATIO_TARGET, "consume", d.profile)


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.consumer", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=RECORDS, help=f"records to drain (default {RECORDS})")
    parser.add_argument("--shops", type=int, default=SHOPS, help=f"shops (default {SHOPS})")
    parser.add_argument("--mem-shops", type=int, default=MEM_SHOPS)
    parser.add_argument("--mem-per-shop", type=int, default=MEM_PER_SHOP)
    parser.add_argument("--skip-memory", action="store_true", help="leave out the partial-batches memory run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.records > 1_000_000 or args.mem_shops * args.mem_per_shop > 1_000_000:
        fail("at most 1,000,000 records per run")
    if args.mem_per_shop >= BATCH:
        fail(f"--mem-per-shop must stay under {BATCH} so that every shop holds a partial batch")
    return args


def main() -> int:
    args = options()
    run = prepare("consumer", PARTITIONS)
    d = drain(args, run.bootstrap, run.db_url, run.topic)
    rows = asyncio.run(read_rows(run.db_url))
    ceiling_url = asyncio.run(fresh_database(run.admin_url, f"bench_ceiling_{run.run_id}"))
    migrate(ceiling_url)
    seconds = asyncio.run(ceiling(ceiling_url, rows, BATCH, CONCURRENCY))
    ceiling_rate = len(rows) / seconds
    say(f"  ceiling: {len(rows):,} rows upserted in {seconds:.1f} s ({ceiling_rate:,.0f} orders/s)")
    mem = memory_run(args, run.bootstrap, run.admin_url, run.run_id) if not args.skip_memory else None
    table = judge(d, len(rows), ceiling_rate, seconds, mem, args.shops)
    text = method(args, d, len(rows), d.rate / ceiling_rate if ceiling_rate else 0.0)
    title = "bench-consumer (baseline: the same rows upserted straight into Postgres, batches of 50)"
    report("consumer", "Consumer", title, table, text, run.info, d.profile, args.no_write)
    return 0


def memory_run(args: argparse.Namespace, bootstrap: str, admin_url: str, run_id: str) -> tuple[int, int, int, int]:
    """A consumer holding a partial batch for each of many shops; (VmHWM KiB, pending, shops, per shop)."""
    topic = f"bench.consumer.mem.{run_id}"
    asyncio.run(create_topics(bootstrap, [topic, topic + ".dlq"], PARTITIONS))
    db_url = asyncio.run(fresh_database(admin_url, f"bench_consumer_mem_{run_id}"))
    migrate(db_url)
    shops = list(range(MEM_SHOP_BASE, MEM_SHOP_BASE + args.mem_shops))
    expected = args.mem_shops * args.mem_per_shop
    took = asyncio.run(preload(bootstrap, topic, records_for(shops, args.mem_per_shop, "BM")))
    say(f"  memory run: preloaded {expected:,} records for {args.mem_shops:,} shops in {took:.1f} s")
    metrics_port = free_port()
    # nothing is sent to Shopee in this run: no batch fills up and none times out
    env = drain_env(db_url, bootstrap, topic, "http://127.0.0.1:9", metrics_port, BATCH_TIMEOUT_SECONDS="600")
    consumer = Process("consume-mem", service_argv("consume"), env)
    pending = 0
    try:
        deadline = time.monotonic() + 120
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        while time.monotonic() < deadline:
            consumer.check_alive()
            value = asyncio.run(metric_value(url, "consumer_records_pending"))
            pending = int(value or 0)
            if pending >= expected:
                break
            time.sleep(0.5)
        time.sleep(1.0)
        consumer.sample_memory()
    finally:
        consumer.stop()
    say(f"  memory run: {pending:,} records pending, peak RSS {mib(consumer.peak_rss_kib)}")
    return consumer.peak_rss_kib, pending, args.mem_shops, args.mem_per_shop


if __name__ == "__main__":
    raise SystemExit(main())
