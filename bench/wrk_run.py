"""Running wrk with bench/wrk/pushes.lua and reading its result (bench-ingest's load)."""

from __future__ import annotations

import argparse
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.report import fail, ms, say
from tests.processes import ROOT

LUA = ROOT / "bench" / "wrk" / "pushes.lua"
DRAIN_SECONDS = 2.0
PERCENTILES = (("p50", "p50"), ("p99", "p99"), ("p99.9", "p999"))  # (shown, wrk script's key)


@dataclass
class WrkResult:
    label: str
    requests: int
    sent: int
    seconds: float  # from the first request sent to the last answer received
    statuses: dict[int, int]
    errors: dict[str, int]
    latency_s: dict[str, float]
    raw: str = field(repr=False, default="")

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        return sum(c for s, c in self.statuses.items() if 200 <= s < 300)

    @property
    def not_ok(self) -> int:
        return sum(c for s, c in self.statuses.items() if not 200 <= s < 300)

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")

    @property
    def unanswered(self) -> int:
        return self.sent - self.requests

    def line(self) -> str:
        counts = f"2xx {self.ok:,}, other {self.not_ok:,}, socket errors {self.socket_errors:,}, unanswered {self.unanswered:,}"
        latency = ", ".join(f"{p} {ms(self.latency_s[k])}" for p, k in (*PERCENTILES, ("max", "max")))
        return f"{self.label}: {self.rps:,.0f} req/s, {self.requests:,} answers ({counts}), {latency}"


def wrk_settings(args: argparse.Namespace) -> list[str]:
    return [f"-t{args.threads}", f"-c{args.connections}", "--timeout", "5s", "--latency"]


def run_wrk(
    label: str, url: str, pushes: Path, args: argparse.Namespace, duration: float, rate: float = 0.0
) -> WrkResult:
    """Send for `duration` seconds, then give the requests in flight DRAIN_SECONDS to be answered."""
    argv = ["wrk", *wrk_settings(args), f"-d{duration + DRAIN_SECONDS:g}s", "-s", str(LUA), url, "--"]
    argv += [str(pushes), f"{rate:g}", str(args.threads), f"{duration:g}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    m = re.search(r"^BENCH_JSON (.*)$", done.stdout, re.M)
    if done.returncode != 0 or m is None:
        fail(f"wrk failed ({done.returncode}): {' '.join(argv)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        raise AssertionError
    data = orjson.loads(m.group(1))
    seconds = data["window_us"] / 1e6
    lat = {k: float(v) / 1e6 for k, v in data["latency_us"].items()}
    result = WrkResult(
        label=label,
        requests=int(data["requests"]),
        sent=int(data["sent"]),
        seconds=seconds,
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
        errors={k: int(v) for k, v in data["errors"].items()},
        latency_s=lat,
        raw=done.stdout,
    )
    say("  " + result.line())
    return result
