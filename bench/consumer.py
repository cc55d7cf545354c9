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
import sys
import time
from collections.abc import Sequence

import httpx
from aiokafka import AIOKafkaProducer

from bench.ceiling import ceiling, read_rows
from bench.consumer_report import Ceiling, Drain, judge, method
from bench.drain import Timed, sandbox_stats, timed_drain
from bench.report import fail, mib, report, say
from bench.setup import Run, consumer_env, create_topics, fresh_database, migrate, prepare, start_sandbox, topic_records
from service.records import OrderRecord
from tests.processes import Process, free_port, service_argv

SHOPS = 500
RECORDS = 100_000
SHOP_BASE = 700_000
PARTITIONS = 12
CONCURRENCY = 10
BATCH = 50
MEM_SHOPS = 10_000
MEM_PER_SHOP = 20
MEM_SHOP_BASE = 5_000_000
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


def drain(args: argparse.Namespace, bootstrap: str, db_url: str, topic: str) -> Drain:
    """Preload the topic, start the consumer, time it until every record is a row."""
    per_shop = max(1, args.records // args.shops)
    total = per_shop * args.shops
    sandbox, sandbox_url = start_sandbox(db_url, args.shops, SHOP_BASE)
    try:
        pairs = records_for(list(range(SHOP_BASE, SHOP_BASE + args.shops)), per_shop, "BC")
        took = asyncio.run(preload(bootstrap, topic, pairs))
        say(f"bench-consumer: preloaded {total:,} records for {args.shops} shops into {topic} in {took:.1f} s")
        port = free_port()
        env = drain_env(db_url, bootstrap, topic, sandbox_url, port, BATCH_TIMEOUT_SECONDS="1")
        metrics = f"http://127.0.0.1:{port}/metrics"
        argv = service_argv("consume")
        timed = timed_drain("consume", argv, env, db_url, total, DRAIN_LIMIT_SECONDS, spy=True, metrics_url=metrics)
        say("  consumer stages, mean seconds: " + ", ".join(f"{k} {v:.4f}" for k, v in timed.stage_means.items()))
        stats = asyncio.run(sandbox_stats(sandbox_url))
    finally:
        sandbox.stop()
    dead = asyncio.run(topic_records(bootstrap, topic + ".dlq"))
    totals = stats.get("totals")
    keys = ("calls", "order_sns_requested", "token_refreshes", "rate_limited", "errors")
    calls = {k: totals.get(k) for k in keys} if isinstance(totals, dict) else None
    say(
        f"  consumer: {total:,} rows in {timed.wall:.1f} s ({timed.rate:,.0f} orders/s while draining); {dead} dead letters"
    )
    return Drain(total, timed.rate, timed.wall, timed.cpu, timed.peak_rss_kib, dead, calls, timed.profile)


def floor(args: argparse.Namespace, run: Run, total: int) -> Timed:
    """bench/minimal.py on the same topic, sandbox settings and concurrency, into a fresh database."""
    db_url = asyncio.run(fresh_database(run.admin_url, f"bench_minimal_{run.run_id}"))
    migrate(db_url)
    sandbox, sandbox_url = start_sandbox(db_url, args.shops, SHOP_BASE)
    try:
        env = drain_env(db_url, run.bootstrap, run.topic, sandbox_url, free_port())
        argv = [sys.executable, "-m", "bench.minimal"]
        timed = timed_drain("minimal", argv, env, db_url, total, DRAIN_LIMIT_SECONDS, spy=False)
    finally:
        sandbox.stop()
    say(f"  I/O floor (bench/minimal.py): {total:,} rows in {timed.wall:.1f} s ({timed.rate:,.0f} orders/s)")
    return timed


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
    floor_timed = floor(args, run, d.total)
    rows = asyncio.run(read_rows(run.db_url))
    ceiling_url = asyncio.run(fresh_database(run.admin_url, f"bench_ceiling_{run.run_id}"))
    migrate(ceiling_url)
    seconds = asyncio.run(ceiling(ceiling_url, rows, BATCH, CONCURRENCY))
    ceiling_rate = len(rows) / seconds
    say(f"  ceiling: {len(rows):,} rows upserted in {seconds:.1f} s ({ceiling_rate:,.0f} orders/s)")
    mem = memory_run(args, run.bootstrap, run.admin_url, run.run_id) if not args.skip_memory else None
    table = judge(d, len(rows), floor_timed, Ceiling(ceiling_rate, seconds), mem, args.shops)
    text = method(args, d, len(rows), floor_timed)
    title = "bench-consumer (baseline: the I/O floor of bench/minimal.py; the plain-upsert ceiling)"
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
