"""bench-ingest's saturated runs, in alternating rounds.

On a shared 2-core machine one 15 s run of the same server moves by up to ±25% from one
minute to the next, so a bare run now against an ingest run two minutes later can say
0.30 or 0.50 for the same code. Here the four servers (bare, the ingest app with an
instant sink, the floor: bare plus Kafka, serve) run side by side, idle while another is measured, and each round
measures all three back to back; the ratios are taken within a round, and the round
with the median ingest/bare ratio is the one reported.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path

from bench.profile import cpu_seconds
from bench.wrk_run import WrkResult, run_wrk
from tests.processes import Process


@dataclass
class Server:
    label: str
    process: Process
    url: str


@dataclass
class Measured:
    """One saturated wrk run against one server, and that server's CPU time per answer."""

    result: WrkResult
    cpu_per_answer: float


@dataclass
class Round:
    bare: Measured
    instant: Measured
    floor: Measured
    serve: Measured

    @property
    def ratio(self) -> float:
        """ingest/bare requests/s within this round."""
        return self.serve.result.rps / self.bare.result.rps if self.bare.result.rps else 0.0

    @property
    def floor_ratio(self) -> float:
        """floor/bare requests/s within this round: the most an ingest acknowledging by Kafka reaches."""
        return self.floor.result.rps / self.bare.result.rps if self.bare.result.rps else 0.0

    @property
    def cpu_ratio(self) -> float:
        """serve's CPU per answer over bare's, within this round."""
        return self.serve.cpu_per_answer / self.bare.cpu_per_answer if self.bare.cpu_per_answer else 0.0

    def line(self) -> str:
        s, b, i, f = self.serve, self.bare, self.instant, self.floor
        return (
            f"{s.result.rps:,.0f} / {b.result.rps:,.0f} req/s = {self.ratio:.2f}; CPU per answer "
            f"{s.cpu_per_answer * 1e6:.0f} / {b.cpu_per_answer * 1e6:.0f} µs = {self.cpu_ratio:.2f}× "
            f"(instant sink {i.cpu_per_answer * 1e6:.0f} µs); floor {f.result.rps:,.0f} req/s = "
            f"{self.floor_ratio:.2f} of bare, {f.cpu_per_answer * 1e6:.0f} µs"
        )


def measure(server: Server, pushes: Path, args: argparse.Namespace, label: str) -> Measured:
    """A saturated wrk run; the server's CPU time over it, per answer."""
    before = cpu_seconds(server.process.pid)
    result = run_wrk(label, server.url, pushes, args, args.duration)
    used = cpu_seconds(server.process.pid) - before
    server.process.check_alive()
    return Measured(result, used / result.requests if result.requests else 0.0)


def rounds(servers: list[Server], pushes: Path, args: argparse.Namespace) -> list[Round]:
    """`args.rounds` rounds of each server in turn; servers labelled bare, instant, floor, serve."""
    return [
        Round(**{s.label: measure(s, pushes, args, f"{s.label} round {n}") for s in servers})
        for n in range(1, args.rounds + 1)
    ]


def median_round(done: list[Round]) -> Round:
    """The round whose ingest/bare ratio is the median (the lower middle one of an even count)."""
    ordered = sorted(done, key=lambda r: r.ratio)
    return ordered[(len(ordered) - 1) // 2]


def spread(done: list[Round]) -> str:
    ratios = [r.ratio for r in done]
    cpu = [r.cpu_ratio for r in done]
    floor = [r.floor_ratio for r in done]
    return (
        f"ingest/bare {min(ratios):.2f}-{max(ratios):.2f} (median {statistics.median(ratios):.2f}); "
        f"floor/bare {min(floor):.2f}-{max(floor):.2f} (median {statistics.median(floor):.2f}); "
        f"CPU per answer {min(cpu):.2f}-{max(cpu):.2f}× bare (median {statistics.median(cpu):.2f}×)"
    )
