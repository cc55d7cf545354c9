"""`make bench-ingest`: requests/s and latency of `python -m service serve` (one worker,
Kafka acks=all), against a bare Starlette endpoint on the same stack as the ceiling.

Load comes from wrk with bench/wrk/pushes.lua cycling through PUSHES distinct, correctly
signed, real-shape order status pushes; both servers get identical wrk settings (threads,
connections, duration, script). Afterwards the topic must hold exactly as many new records
as there were 2xx answers, with no non-2xx answers and no socket errors. Then both are run
again paced at a fixed moderate rate to report p99 where the server is not saturated.

    scripts/with-services.sh 19092 55433 .venv/bin/python -m bench.ingest [--duration 15] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.profile import Spy, cpu_seconds, stamp
from bench.report import Row, fail, judged, machine, mib, ms, num, report, say, target_missed, versus
from bench.setup import create_topics, kafka_env, require_env, serve_argv, topic_records
from bench.wrk_run import PERCENTILES, WrkResult, run_wrk, wrk_settings
from tests.processes import Process, child_env, free_port, service_argv
from tests.pushes import real_push
from tests.signer import push_authorization

PUSH_KEY = "bench_push_key_not_secret"
CALLBACK_URL = "https://receiver.example.com/shopee/push"
PUSHES = 10_000
SHOPS = 500
STATUSES = (
    "READY_TO_SHIP",
    "PROCESSED",
    "SHIPPED",
    "TO_CONFIRM_RECEIVE",
    "COMPLETED",
    "RETRY_SHIP",
    "IN_CANCEL",
    "CANCELLED",
)
PARTITIONS = 12
RATIO_TARGET = 0.5
SERVE_RSS_TARGET_KIB = 150 * 1024


def write_pushes(path: Path, count: int) -> None:
    """`count` distinct signed code-3 pushes, one `signature TAB body` a line, for wrk's script."""
    lines = []
    for n in range(count):
        update_time = 1_700_000_000 + n * 7
        msg_id = hashlib.md5(str(n).encode(), usedforsecurity=False).hexdigest() if n % 3 == 0 else None
        sn, status = f"2408{n:06d}B{n % 36:02d}X", STATUSES[n % len(STATUSES)]
        body = real_push(810_000 + n % SHOPS, sn, status, update_time, msg_id=msg_id)
        lines.append(push_authorization(PUSH_KEY, CALLBACK_URL, body).encode() + b"\t" + body)
    path.write_bytes(b"\n".join(lines) + b"\n")


# -- the runs ----------------------------------------------------------------------------


@dataclass
class Runs:
    """The saturated and paced wrk runs against one server, its CPU per answer and memory."""

    saturated: WrkResult
    paced: WrkResult
    cpu_per_answer: float
    peak_rss_kib: int
    warm: WrkResult | None = None
    profile: Path | None = None
    new_records: tuple[int, int] = (0, 0)  # saturated, paced


def measured(
    service: Process, label: str, url: str, pushes: Path, args: argparse.Namespace, spy: bool = False
) -> tuple[WrkResult, float, Path | None]:
    """A saturated wrk run; also the server's CPU time per answer (and a py-spy profile)."""
    profiler = Spy(service.pid, label) if spy else None
    before = cpu_seconds(service.pid)
    result = run_wrk(label, url, pushes, args, args.duration)
    used = cpu_seconds(service.pid) - before
    profile = profiler.stop() if profiler is not None else None
    return result, (used / result.requests if result.requests else 0.0), profile


def run_bare(pushes: Path, args: argparse.Namespace) -> Runs:
    port = free_port()
    with Process("bare", [*service_argv()[:2], "bench.bare", "--port", str(port)], child_env()) as bare:
        bare.wait_http(f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/webhooks/shopee"
        run_wrk("bare warm-up", url, pushes, args, args.warmup)
        saturated, cpu, _ = measured(bare, "bare", url, pushes, args)
        paced = run_wrk(f"bare paced {args.rate:g}/s", url, pushes, args, args.duration, args.rate)
        return Runs(saturated, paced, cpu, bare.sample_memory())


def run_instant(pushes: Path, args: argparse.Namespace) -> float:
    """CPU per answer of the ingest app with an instant sink (bench/instant.py), saturated."""
    port = free_port()
    env = child_env(SHOPEE_PUSH_KEY=PUSH_KEY, SHOPEE_CALLBACK_URL=CALLBACK_URL)
    with Process("instant", [*service_argv()[:2], "bench.instant", "--port", str(port)], env) as instant:
        instant.wait_http(f"http://127.0.0.1:{port}/readyz")
        url = f"http://127.0.0.1:{port}/webhooks/shopee"
        run_wrk("instant-sink warm-up", url, pushes, args, args.warmup)
        result, cpu, _ = measured(instant, "ingest, instant sink", url, pushes, args)
        if result.not_ok or result.socket_errors:
            fail(f"the instant-sink run had {result.not_ok} non-2xx and {result.socket_errors} socket errors")
        return cpu


def run_serve(pushes: Path, args: argparse.Namespace, bootstrap: str, topic: str) -> Runs:
    port = free_port()
    env = child_env(SHOPEE_PUSH_KEY=PUSH_KEY, SHOPEE_CALLBACK_URL=CALLBACK_URL, **kafka_env(bootstrap, topic))
    with Process("serve", serve_argv(port), env) as serve:
        serve.wait_http(f"http://127.0.0.1:{port}/readyz")
        url = f"http://127.0.0.1:{port}/webhooks/shopee"
        warm = run_wrk("ingest warm-up", url, pushes, args, args.warmup)
        before = asyncio.run(topic_records(bootstrap, topic))
        if before != warm.ok:
            say(f"  warning: after the warm-up the topic holds {before:,} records for {warm.ok:,} 2xx")
        saturated, cpu, profile = measured(serve, "ingest", url, pushes, args, spy=True)
        after_saturated = asyncio.run(topic_records(bootstrap, topic))
        paced = run_wrk(f"ingest paced {args.rate:g}/s", url, pushes, args, args.duration, args.rate)
        after_paced = asyncio.run(topic_records(bootstrap, topic))
        serve.check_alive()
        new = (after_saturated - before, after_paced - after_saturated)
        return Runs(saturated, paced, cpu, serve.sample_memory(), warm, profile, new)


def judge(ing: Runs, bare: Runs, dead: int, rate: float, instant_cpu: float) -> list[Row]:
    ratio = ing.saturated.rps / bare.saturated.rps if bare.saturated.rps else 0.0
    bad = sum(r.not_ok + r.socket_errors + r.unanswered for r in (ing.warm or ing.saturated, ing.saturated, ing.paced))
    new_sat, new_paced = ing.new_records
    counted = new_sat == ing.saturated.ok and new_paced == ing.paced.ok and dead == 0
    rps = num(ing.saturated.rps), f"≥ {RATIO_TARGET} × bare", ratio >= RATIO_TARGET
    rows = [judged("requests/s, saturated", *rps, num(bare.saturated.rps), f"{ratio:.2f}")]
    for mode, i, b in (
        ("saturated", ing.saturated, bare.saturated),
        (f"paced at {rate:,.0f}/s", ing.paced, bare.paced),
    ):
        if mode != "saturated":
            rows.append(Row(f"achieved rate, {mode}", num(i.rps), num(b.rps)))
        rows += [versus(f"{p} latency, {mode}", i.latency_s[k], b.latency_s[k], ms) for p, k in PERCENTILES]
    records = (
        f"{new_sat:,} / {ing.saturated.ok:,} saturated; {new_paced:,} / {ing.paced.ok:,} paced; {dead} dead letters"
    )
    rss = mib(ing.peak_rss_kib), "≤ 150 MB", 0 < ing.peak_rss_kib <= SERVE_RSS_TARGET_KIB
    return [
        *rows,
        judged("non-2xx + socket errors + unanswered (all ingest runs)", num(bad), "0", bad == 0),
        judged("new records in the topic vs 2xx answers", records, "equal, 0 dead letters", counted),
        versus("server CPU per answer, saturated", ing.cpu_per_answer, bare.cpu_per_answer, micro),
        versus("… of which HTTP and the handler (instant sink, no Kafka)", instant_cpu, bare.cpu_per_answer, micro),
        judged("peak RSS of serve (VmHWM)", *rss, mib(bare.peak_rss_kib)),
    ]


def micro(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def method(args: argparse.Namespace, info: dict[str, str], ing: Runs, bare: Runs) -> str:
    ratio = ing.saturated.rps / bare.saturated.rps if bare.saturated.rps else 0.0
    text = f"""`python -m service serve --workers 1` producing to a fresh {PARTITIONS}-partition topic on the
local broker with acks=all and idempotence, no outbox (no DATABASE_URL), so every 2xx below
is a record acknowledged by Kafka. Baseline: a bare Starlette endpoint (`bench/bare.py`,
the same uvicorn options) that reads the body and answers an empty 204. Load: `wrk
{" ".join(wrk_settings(args))} -d{args.duration:g}s -s bench/wrk/pushes.lua` cycling through
{args.pushes:,} distinct, correctly signed code-3 pushes for {SHOPS} shops, identical for both
servers, after a {args.warmup:g} s warm-up each; the paced rows at {args.rate:,.0f} requests/s.
wrk, the server, the broker and Postgres all share this machine's {info["cores"]} cores.
"Server CPU per answer" is the server's user+system time over the saturated run divided by
its answers. wrk totals: ingest {ing.saturated.requests:,} answers in {ing.saturated.seconds:.1f} s
({_statuses(ing.saturated)}), bare {bare.saturated.requests:,} in {bare.saturated.seconds:.1f} s
({_statuses(bare.saturated)}).
"""
    return text + target_missed("ingest/bare", ratio, RATIO_TARGET, "serve", ing.profile)


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured wrk run (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of wrk before each measured pair")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s of the paced runs (default 1000)")
    parser.add_argument("--pushes", type=int, default=PUSHES, help=f"distinct signed pushes (default {PUSHES})")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.pushes < 1000:
        fail("--pushes must be at least 1000")
    if args.duration > 120 or args.warmup > 30:
        fail("--duration is at most 120 s and --warmup at most 30 s")
    if shutil.which("wrk") is None:
        fail("wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu; `brew install wrk` on macOS)")
    return args


def main() -> int:
    args = options()
    bootstrap = require_env("KAFKA_BOOTSTRAP_SERVERS")
    info = machine(wrk=_wrk_version())
    topic = f"bench.ingest.{stamp()}"
    asyncio.run(create_topics(bootstrap, [topic, topic + ".dlq"], PARTITIONS))
    pushes = Path(tempfile.mkdtemp(prefix="bench-ingest-")) / "pushes.tsv"
    write_pushes(pushes, args.pushes)
    say(f"bench-ingest: {args.pushes:,} distinct signed pushes in {pushes}; topic {topic} ({PARTITIONS} partitions)")
    bare = run_bare(pushes, args)
    instant_cpu = run_instant(pushes, args)
    ing = run_serve(pushes, args, bootstrap, topic)
    dead = asyncio.run(topic_records(bootstrap, topic + ".dlq"))
    rows = judge(ing, bare, dead, args.rate, instant_cpu)
    title = "bench-ingest (baseline: bare Starlette endpoint, same server stack and wrk settings)"
    report("ingest", "Ingest", title, rows, method(args, info, ing, bare), info, ing.profile, args.no_write)
    return 0


def _statuses(result: WrkResult) -> str:
    return ", ".join(f"{s}: {c:,}" for s, c in sorted(result.statuses.items())) or "none"


def _wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5, check=False)
    except OSError:
        return "missing"
    m = re.search(r"wrk\s+(\S+)", out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
