"""What the benchmarks report: result tables, the machine they ran on, and their sections
of docs/benchmarks.md (the findings part there is kept as written, never regenerated)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.processes import ROOT

DOC = ROOT / "docs" / "benchmarks.md"
KAFKA_LIBS = ROOT / ".cache" / "kafka" / "libs"

# -- output ------------------------------------------------------------------------------


def say(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"bench: {message}\n")
    raise SystemExit(code)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a result table. `met` is "yes", "no" or "" (no target)."""

    metric: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: str = ""


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def judged(metric: str, value: str, target: str, ok: bool, baseline: str = "", ratio: str = "") -> Row:
    """A row with a target, and whether it was met."""
    return Row(metric, value, baseline, ratio, target, met(ok))


def versus(metric: str, value: float, baseline: float, show: Callable[[float], str]) -> Row:
    """A row comparing a value with its baseline (ratio value/baseline)."""
    return Row(metric, show(value), show(baseline), f"{value / baseline:.1f}×" if baseline else "")


def num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MB"


def render_table(rows: Sequence[Row]) -> str:
    head = ("metric", "value", "baseline", "ratio", "target", "met")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = (r.metric, r.value, r.baseline or "–", r.ratio or "–", r.target or "–", r.met or "–")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def print_table(title: str, rows: Sequence[Row]) -> None:
    head = ("metric", "value", "baseline", "ratio", "target", "met")
    cells = [head] + [
        (r.metric, r.value, r.baseline or "-", r.ratio or "-", r.target or "-", r.met.replace("*", "") or "-")
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    say("")
    say(title)
    for n, c in enumerate(cells):
        say("  " + "  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
        if n == 0:
            say("  " + "  ".join("-" * w for w in widths))
    say("")


# -- the machine -------------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def kafka_version() -> str:
    names = sorted(p.name for p in KAFKA_LIBS.glob("*.jar")) if KAFKA_LIBS.is_dir() else []
    for pattern in (
        r"kafka-server-(\d[\w.\-]*)\.jar",
        r"kafka_\d+\.\d+-(\d[\w.\-]*)\.jar",
        r"kafka-clients-(\d[\w.\-]*)\.jar",
    ):
        for name in names:
            if m := re.fullmatch(pattern, name):
                return m.group(1)
    return "unknown"


def _proc_text(path: str) -> str:
    try:
        return Path("/proc", path).read_text()
    except OSError:
        return ""


def _proc(path: str, prefix: str) -> str:
    """The value after the first line of /proc/`path` starting with `prefix` ("" if none)."""
    lines = _proc_text(path).splitlines()
    return next((re.sub(r"\s+", " ", line.split(":", 1)[1]).strip() for line in lines if line.startswith(prefix)), "")


def machine(**extra: str) -> dict[str, str]:
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--", "service", "transforms", "bench"):
        commit += " (+ uncommitted changes)"
    info = {
        "commit": commit,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count() or 0),
        "cpu": _proc("cpuinfo", "model name") or platform.machine(),
        "memory": f"{int((_proc('meminfo', 'MemTotal:') or '0').split()[0]) / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "kafka": kafka_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load average at start": " ".join(_proc_text("loadavg").split()[:3]) or "?",
    }
    info.update(extra)
    return info


def machine_line(info: Mapping[str, str]) -> str:
    known = {"commit", "date", "cores", "cpu", "memory", "python", "kafka", "os"}
    parts = [f"commit `{info['commit']}`", info["date"], f"{info['cores']} cores ({info['cpu']})"]
    parts += [f"{info['memory']} RAM", f"Python {info['python']}"]
    parts += [f"Kafka {info['kafka']} (single local broker, replication factor 1)"]
    parts += [f"{k} {v}" for k, v in info.items() if k not in known] + [info["os"]]
    return ", ".join(parts)


# -- docs/benchmarks.md ------------------------------------------------------------------

_INTRO = """# Benchmarks

Produced by `make bench` (or one of `make bench-ingest`, `make bench-consumer`,
`make bench-e2e`, `make bench-console`, `make bench-soak`; the code is in `bench/`). Each
benchmark starts its own Kafka broker and Postgres on 127.0.0.1, measures, and replaces
its own section below. Absolute numbers belong to the machine named in each section; the
ratios against the baseline measured in the same run on the same machine are what
carries over to other machines.
"""

SECTIONS = ("ingest", "consumer", "e2e", "console", "soak", "findings")


def _split(text: str) -> dict[str, str]:
    found = {}
    for name in SECTIONS:
        m = re.search(rf"<!-- bench:{name} -->\n(.*?)<!-- /bench:{name} -->\n", text, re.S)
        if m:
            found[name] = m.group(1)
    return found


def write_section(name: str, body: str, info: Mapping[str, str]) -> Path:
    """Replace (or add) section `name` of docs/benchmarks.md and refresh the header."""
    assert name in SECTIONS and name != "findings"
    sections = _split(DOC.read_text()) if DOC.exists() else {}
    sections[name] = body.rstrip() + "\n"
    header = f"Last run: {machine_line(info)} (`make bench-{name}`).\n"
    out = [_INTRO, "<!-- bench:header -->\n" + header + "<!-- /bench:header -->\n"]
    for section in SECTIONS:
        if section in sections:
            out.append(f"<!-- bench:{section} -->\n{sections[section]}<!-- /bench:{section} -->\n")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(out))
    return DOC


def report(
    name: str,
    heading: str,
    title: str,
    rows: Sequence[Row],
    method: str,
    info: Mapping[str, str],
    profile: Path | None = None,
    print_only: bool = False,
) -> None:
    """Print the table (and the profile's hot spots); unless `print_only`, write the section."""
    from bench.profile import hot_spots

    print_table(title, rows)
    if profile is not None:
        say(f"py-spy profile ({profile}):")
        for inc, own, f in hot_spots(profile):
            say(f"  {inc:5.1%} incl {own:5.1%} self  {f}")
    if print_only:
        return
    run = f"Run: {info['commit']}, {info['date']}" + (f"; Postgres {info['postgres']}" if "postgres" in info else "")
    body = f"## {heading} (`make bench-{name}`)\n\n{run}.\n\n{method.strip()}\n\n{render_table(rows)}\n"
    path = write_section(name, body, info)
    say(f"wrote the {name} section of {path.relative_to(ROOT)}")


def target_missed(what: str, ratio: float, target: float, process: str, profile: Path | None) -> str:
    """The paragraph a section gets when `ratio` is under `target`: where the time went."""
    if ratio >= target:
        return ""
    from bench.profile import hot_spots_markdown

    head = f"\n**Target missed**: {what} = {ratio:.3f} < {target}. Where {process}'s time goes:\n\n"
    return head + hot_spots_markdown(profile) + "\n"
