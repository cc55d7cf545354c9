"""What `make bench-soak` reports: its targets, its result table, its method text (with a
minute-by-minute table) and where its plot goes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import DOC, Row, judged, mib, ms, num
from bench.soak_load import Answers
from bench.soak_samples import EVERY_SECONDS, Series
from tests.percentile import percentile

PLOT = DOC.parent / "benchmarks" / "soak.png"
WARM_UP_MARGIN_SECONDS = 30.0  # after the batch timeout: the first batches are out, pending has levelled
WARM_WINDOW_SECONDS = 60.0
RSS_GROWTH_KIB = 5 * 1024  # "no growth": within 5 MB or 5 %, whichever is larger
RSS_GROWTH_SHARE = 0.05
LAG_MARGIN_SECONDS = 15.0  # lag bound: the pushes of one batch timeout plus this


def flow_control() -> dict[str, str]:
    """The consumer's production flow control: the defaults of service/settings.py."""
    from service.settings import Settings

    names = ("batch_max_size", "batch_timeout_seconds", "shop_rate_limit_per_minute", "max_concurrency")
    return {n.upper(): f"{Settings.model_fields[n].default:g}" for n in names}


def windows(seconds: float, batch_timeout: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """(right after warm-up, the last third) of the push phase, in seconds since the first push."""
    warm_start = batch_timeout + WARM_UP_MARGIN_SECONDS
    last_start = seconds * 2 / 3
    return (warm_start, min(warm_start + WARM_WINDOW_SECONDS, last_start)), (last_start, seconds)


@dataclass
class Outcome:
    seconds: float
    rate: float
    shops: int
    consumers: int
    batch_timeout: float
    answers: Answers = field(default_factory=Answers)
    series: Series = field(default_factory=Series)
    sent: int = 0
    send_seconds: float = math.nan
    pushes_end: float = math.nan
    drain_seconds: float | None = None
    rows: int = 0
    holding_last: int = 0
    latencies: list[float] = field(default_factory=list)
    dead_letters: int = -1
    cpu_share: dict[str, float] = field(default_factory=dict)
    start_wall: float = math.nan  # time.time() of the first push
    late_written: list[float] = field(default_factory=list)  # seconds after the first push
    retries: dict[str, float] = field(default_factory=dict)  # the consumers' retries by reason
    batches: dict[str, float] = field(default_factory=dict)  # the consumers' batches by outcome
    peak_rss_kib: dict[str, int] = field(default_factory=dict)

    def windows(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The compared windows of the push phase as it went (a late client stretches it)."""
        return windows(self.pushes_end, self.batch_timeout)

    @property
    def orders(self) -> int:
        return len(self.answers.last_ok)

    @property
    def checkable(self) -> int:
        """Acknowledged orders none of whose pushes went unacknowledged."""
        return sum(1 for o in self.answers.last_ok if o not in self.answers.unanswered)


def rss_growth_ok(warm_kib: float, last_kib: float) -> bool:
    return last_kib - warm_kib <= max(RSS_GROWTH_KIB, RSS_GROWTH_SHARE * warm_kib)


def _rss_rows(o: Outcome) -> list[Row]:
    warm, last = o.windows()
    rows = []
    for name in o.series.samples[0].rss_kib if o.series.samples else []:
        a, b = o.series.mean_rss_kib(name, *warm), o.series.mean_rss_kib(name, *last)
        value = f"{mib(int(a))} → {mib(int(b))} ({(b - a) / 1024:+,.1f} MB; peak {mib(o.peak_rss_kib.get(name, 0))})"
        rows.append(judged(f"RSS of {name}, warm-up → last third", value, "≤ +5 MB or +5 %", rss_growth_ok(a, b)))
    return rows


def judge(o: Outcome) -> list[Row]:
    a = o.answers
    warm, last = o.windows()
    achieved = o.sent / o.send_seconds if o.send_seconds else math.nan
    bound = achieved * (o.batch_timeout + LAG_MARGIN_SECONDS)
    max_lag = o.series.max_lag(warm[0], o.pushes_end)
    limit = o.batch_timeout + 1
    p50, p90, p99 = (percentile(o.latencies, p) for p in (50, 90, 99))
    worst = max(o.latencies, default=math.nan)
    drained = "not within " + ms(o.batch_timeout + 60) if o.drain_seconds is None else ms(o.drain_seconds)
    cpu = ", ".join(f"{n} {s:.0%}" for n, s in o.cpu_share.items())
    return [
        Row("pushes sent (asked)", f"{o.sent:,} in {o.send_seconds:,.0f} s ({o.rate:g}/s × {o.seconds:g} s asked)"),
        Row("achieved push rate", f"{achieved:,.0f}/s"),
        judged("non-2xx answers + client errors", num(a.failed), "0", a.failed == 0),
        judged("rows / distinct orders acknowledged", f"{o.rows:,} / {o.orders:,}", "equal", o.rows == o.orders > 0),
        judged(
            "rows holding their order's last push (event_id)",
            f"{o.holding_last:,} / {o.checkable:,}",
            "all",
            o.holding_last == o.checkable > 0,
        ),
        judged("dead letters", num(o.dead_letters), "0", o.dead_letters == 0),
        Row("order's last push → its row, p50", ms(p50)),
        Row("… p90", ms(p90)),
        judged("… p99", ms(p99), f"≤ {limit:g} s (batch timeout + 1 s)", p99 <= limit),
        judged("… max", ms(worst), f"≤ {limit:g} s", worst <= limit),
        judged(
            "consumer lag, max after warm-up",
            f"{max_lag:,}",
            f"≤ {bound:,.0f} (rate × (timeout + {LAG_MARGIN_SECONDS:g} s))",
            max_lag <= bound,
        ),
        Row(
            "consumer lag, mean warm-up → last third",
            f"{o.series.mean_lag(*warm):,.0f} → {o.series.mean_lag(*last):,.0f}",
        ),
        judged("drained (lag 0, every row) after the last push", drained, "yes", o.drain_seconds is not None),
        *_rss_rows(o),
        Row("CPU while pushing (share of one core)", cpu),
        Row("rows later than batch timeout + 1 s, written at", _late(o)),
        Row("consumer batches by outcome; retries by reason", f"{_counts(o.batches)}; {_counts(o.retries) or 'none'}"),
    ]


def _counts(counts: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:,.0f}" for k, v in sorted(counts.items()) if v)


def _late(o: Outcome) -> str:
    if not o.late_written:
        return "none"
    share = len(o.late_written) / len(o.latencies)
    first, last = min(o.late_written) / 60, max(o.late_written) / 60
    return f"{len(o.late_written):,} ({share:.2%}), minutes {first:.1f}-{last:.1f} after the first push"


def minute_table(series: Series, names: list[str]) -> str:
    """Lag and RSS at each whole minute (the nearest sample)."""
    if not series.samples:
        return ""
    lines = ["| minute | lag | " + " | ".join(f"{n} RSS" for n in names) + " |", "|---" * (len(names) + 2) + "|"]
    end = series.samples[-1].seconds
    for minute in range(math.floor(end / 60) + 1):
        s = min(series.samples, key=lambda s: abs(s.seconds - minute * 60))
        lines.append(f"| {minute} | {s.lag:,} | " + " | ".join(mib(s.rss_kib.get(n, 0)) for n in names) + " |")
    return "\n".join(lines)


def method(o: Outcome, info: Mapping[str, str]) -> str:
    warm, last = o.windows()
    production = flow_control()
    flow = {**production, "BATCH_TIMEOUT_SECONDS": f"{o.batch_timeout:g}"}
    shaped = (o.seconds, o.rate, o.shops, o.consumers, f"{o.batch_timeout:g}") == (
        600,
        300,
        2000,
        3,
        production["BATCH_TIMEOUT_SECONDS"],
    )
    names = list(o.series.samples[0].rss_kib) if o.series.samples else []
    overridden = flow["BATCH_TIMEOUT_SECONDS"] != production["BATCH_TIMEOUT_SECONDS"]
    origin = "service/settings.py's defaults" + (", but for the batch timeout" if overridden else "")
    text = f"""`serve` (one worker, Postgres outbox as deployed) → Kafka (100 partitions) →
{o.consumers} `consume` processes in one group with flow control
{", ".join(f"{k}={v}" for k, v in flow.items())} ({origin}) → sandbox
Shopee (no added latency; its default: no rate limit) → Postgres. A paced asyncio/httpx
client sends signed order status pushes for {o.shops:,} shops at {o.rate:g}/s for {o.seconds:g} s.
Orders move READY_TO_SHIP → PROCESSED → SHIPPED → TO_CONFIRM_RECEIVE → COMPLETED (10 % end
CANCELLED), 1-5 pushes each, so most orders get several; an order's pushes are 2 s or more
(about 10 s on average) apart, mixed with other shops'. Every {EVERY_SECONDS:g} s: the group's
lag (end offsets − committed offsets) and each process's RSS (VmRSS). After the last push:
wait (up to batch timeout + 60 s) for lag 0 and every row. Latency: per order, its row's
processed_at − record_timestamp_ms (when `serve` received the push; one machine, one clock),
counted where the row holds the order's last acknowledged push (its msg_id as event_id).
Warm-up ends at batch timeout + 30 s; RSS and lag are compared between {warm[0]:.0f}-{warm[1]:.0f} s
and {last[0]:.0f}-{last[1]:.0f} s after the first push. A lag of about one batch timeout of
pushes is the design: a record is committed only once its batch's row is written.

![consumer lag and RSS over time](benchmarks/{PLOT.name})

{minute_table(o.series, names)}
"""
    achieved = o.sent / o.send_seconds if o.send_seconds else math.nan
    if achieved < 0.9 * o.rate:
        text += (
            f"\nThe client reached {achieved:,.0f} of the {o.rate:g} pushes/s asked for: on this "
            f"{info['cores']}-core machine it shares the CPU with serve, the consumers, the sandbox, "
            "the broker and Postgres. Everything above is for the rate reached.\n"
        )
    if not shaped:
        text = "**Not the production-shaped run** (see the sizes below; `make bench-soak` runs it).\n\n" + text
    return text


def plot_path(print_only: bool, scratch: Path) -> Path:
    return scratch if print_only else PLOT
