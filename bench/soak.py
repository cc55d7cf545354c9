"""`make bench-soak`: the whole pipeline, shaped like production, for ten minutes.

`serve` (one worker, with its Postgres outbox as deployed) -> Kafka (100 partitions) ->
3 `consume` processes in one group with the production flow control (the defaults of
service/settings.py) -> sandbox Shopee -> Postgres. A paced client sends order status
pushes for 2,000 shops at 300/s (bench/soak_load.py). Every 5 s it samples the group's
lag and each process's RSS; after the last push it waits for the drain, then checks that
every acknowledged order has exactly one row holding its last push, that nothing was
dead-lettered, and how long each order's last push took to reach its row.

Sized by environment variables (for a short trial, e.g. SOAK_SECONDS=90 SOAK_RATE=100
SOAK_BATCH_TIMEOUT_SECONDS=10): SOAK_SECONDS (600), SOAK_RATE (300), SOAK_SHOPS (2000),
SOAK_CONSUMERS (3), SOAK_BATCH_TIMEOUT_SECONDS (the production default, 120).

    scripts/with-services.sh 19092 55433 .venv/bin/python -m bench.soak [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import uvloop

from bench.pipeline import Pipeline, paced_send, start_pipeline, stop_pipeline
from bench.profile import cpu_seconds
from bench.report import fail, report, say
from bench.setup import Run, prepare, topic_records
from bench.soak_load import Answers, OrderMix
from bench.soak_report import Outcome, flow_control, judge, method, plot_path, windows
from bench.soak_samples import LagProbe, consumer_counts, plot, sample_until, wait_for_group

SHOP_BASE = 910_000
PARTITIONS = 100
IN_PROGRESS_SECONDS = 10.0  # orders in progress: this many seconds of pushes (an order's pushes ~10 s apart)
MIN_GAP_SECONDS = 2.0  # between two pushes of one order (on the sending timeline)
DRAIN_MARGIN_SECONDS = 60.0

_ROWS = """
SELECT shop_id, order_sn, event_id,
       extract(epoch FROM processed_at) - record_timestamp_ms / 1000.0 AS latency,
       extract(epoch FROM processed_at) AS written
FROM shopee_orders_raw
"""


@dataclass(frozen=True)
class Config:
    seconds: float
    rate: float
    shops: int
    consumers: int
    batch_timeout: float

    @property
    def pushes(self) -> int:
        return int(self.seconds * self.rate)


def _env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        fail(f"{name}={os.environ[name]!r} is not a number")
        raise AssertionError from None  # unreachable


def config_from_env() -> Config:
    production = flow_control()["BATCH_TIMEOUT_SECONDS"]
    cfg = Config(
        seconds=_env("SOAK_SECONDS", 600),
        rate=_env("SOAK_RATE", 300),
        shops=int(_env("SOAK_SHOPS", 2000)),
        consumers=int(_env("SOAK_CONSUMERS", 3)),
        batch_timeout=_env("SOAK_BATCH_TIMEOUT_SECONDS", float(production)),
    )
    if min(cfg.seconds, cfg.rate, cfg.shops, cfg.consumers, cfg.batch_timeout) <= 0:
        fail("SOAK_SECONDS, SOAK_RATE, SOAK_SHOPS, SOAK_CONSUMERS and SOAK_BATCH_TIMEOUT_SECONDS must be > 0")
    if not 1 <= cfg.consumers <= PARTITIONS:
        fail(f"SOAK_CONSUMERS must be between 1 and the {PARTITIONS} partitions")
    warm, _ = windows(cfg.seconds, cfg.batch_timeout)
    if warm[0] >= warm[1]:
        fail(
            f"SOAK_SECONDS={cfg.seconds:g} is too short for a {cfg.batch_timeout:g} s batch timeout: the warm-up "
            f"(batch timeout + 30 s) must end before the last third; use > {1.5 * (cfg.batch_timeout + 30):.0f} s"
        )
    return cfg


async def _row_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM shopee_orders_raw"))


async def drain(probe: LagProbe, db_url: str, answers: Answers, seconds: float) -> float | None:
    """Seconds until the lag is 0 and every acknowledged order has its row (None: not within `seconds`)."""
    start = time.perf_counter()
    conn = await asyncpg.connect(db_url)
    try:
        while time.perf_counter() - start < seconds:
            if await probe.lag() == 0 and await _row_count(conn) >= len(answers.last_ok):
                return time.perf_counter() - start
            await asyncio.sleep(1)
        return None
    finally:
        await conn.close()


async def drive(cfg: Config, run_: Run, pipeline: Pipeline, outcome: Outcome) -> None:
    """Send for cfg.seconds while sampling; wait for the drain; read the rows."""
    in_progress = max(100, int(cfg.rate * IN_PROGRESS_SECONDS))
    mix = OrderMix(cfg.shops, SHOP_BASE, in_progress, min_gap=max(1, int(cfg.rate * MIN_GAP_SECONDS)))
    async with LagProbe(run_.bootstrap, run_.topic, pipeline.group) as probe:
        settle = time.perf_counter()
        await wait_for_group(probe, cfg.consumers)
        say(f"bench-soak: the group settled with {cfg.consumers} members in {time.perf_counter() - settle:.0f} s")
        say(f"bench-soak: {cfg.pushes:,} pushes for {cfg.shops:,} shops at {cfg.rate:g}/s ({cfg.seconds:g} s)")
        cpu = {p.name: cpu_seconds(p.pid) for p in pipeline.processes()}
        stop = asyncio.Event()
        start, outcome.start_wall = time.perf_counter(), time.time()
        sampler = asyncio.create_task(sample_until(probe, pipeline, outcome.series, start, stop))
        try:
            url = pipeline.serve_url + "/webhooks/shopee"
            outcome.sent, outcome.send_seconds = await paced_send(
                url, mix.pushes(cfg.pushes), cfg.rate, outcome.answers.answered
            )
            outcome.pushes_end = time.perf_counter() - start
            outcome.cpu_share = {
                p.name: (cpu_seconds(p.pid) - cpu[p.name]) / outcome.send_seconds for p in pipeline.processes()
            }
            say(f"  sent {outcome.sent:,} in {outcome.send_seconds:,.0f} s; waiting for the drain")
            outcome.drain_seconds = await drain(
                probe, run_.db_url, outcome.answers, cfg.batch_timeout + DRAIN_MARGIN_SECONDS
            )
        finally:
            stop.set()
            await sampler
    await read_rows(run_.db_url, outcome)


async def read_rows(db_url: str, outcome: Outcome) -> None:
    """Rows, how many hold their order's last acknowledged push, and those pushes' latency."""
    answers = outcome.answers
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(_ROWS)
    finally:
        await conn.close()
    outcome.rows = len(rows)
    odd: list[str] = []
    for r in rows:
        order = (int(r["shop_id"]), r["order_sn"])
        last = answers.last_ok.get(order)
        if last is not None and order not in answers.unanswered and r["event_id"] == last[1]:
            outcome.holding_last += 1
            outcome.latencies.append(float(r["latency"]))
            if r["latency"] > outcome.batch_timeout + 1:
                outcome.late_written.append(float(r["written"]) - outcome.start_wall)
        elif len(odd) < 5:
            odd.append(f"{order}: event_id {r['event_id']}, last acknowledged push {last}")
    for line in odd:
        say(f"  row not holding its order's last push: {line}")


def run(cfg: Config, run_: Run) -> Outcome:
    settings = {"BATCH_TIMEOUT_SECONDS": f"{cfg.batch_timeout:g}"}
    pipeline = start_pipeline(run_, cfg.shops, SHOP_BASE, cfg.consumers, settings, outbox=True)
    outcome = Outcome(cfg.seconds, cfg.rate, cfg.shops, cfg.consumers, cfg.batch_timeout)
    try:
        uvloop.run(drive(cfg, run_, pipeline, outcome))
        pipeline.check_alive()
        outcome.retries = consumer_counts(pipeline, "consumer_retries", "reason")
        outcome.batches = consumer_counts(pipeline, "consumer_batches", "outcome")
        outcome.peak_rss_kib = {p.name: p.sample_memory() for p in pipeline.processes()}
    finally:
        stop_pipeline(pipeline)
    outcome.dead_letters = asyncio.run(topic_records(run_.bootstrap, run_.topic + ".dlq"))
    a = outcome.answers
    say(f"  {a.ok:,} answered 2xx, {a.failed:,} not; {len(a.last_ok):,} orders; {outcome.rows:,} rows")
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    cfg = config_from_env()
    run_ = prepare("soak", PARTITIONS)
    outcome = run(cfg, run_)
    png = plot_path(args.no_write, Path(tempfile.gettempdir()) / f"bench-soak-{run_.run_id}.png")
    plot(outcome.series, outcome.pushes_end, outcome.windows(), png)
    say(f"plot: {png}")
    rows = judge(outcome)
    report("soak", "Soak", "bench-soak", rows, method(outcome, run_.info), run_.info, None, args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
