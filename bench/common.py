"""What every benchmark shares: the machine it ran on, result tables, the sections of
docs/benchmarks.md, child processes (with their peak RSS), and Kafka/Postgres set-up.

Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
KAFKA_LIBS = ROOT / ".cache" / "kafka" / "libs"
PY = sys.executable

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
    patterns = (
        r"^kafka-server-(\d[\w.\-]*)\.jar$",
        r"^kafka_\d+\.\d+-(\d[\w.\-]*)\.jar$",
        r"^kafka-clients-(\d[\w.\-]*)\.jar$",
    )
    names = sorted(p.name for p in KAFKA_LIBS.glob("*.jar")) if KAFKA_LIBS.is_dir() else []
    for pattern in patterns:
        for name in names:
            m = re.match(pattern, name)
            if m:
                return m.group(1)
    return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return re.sub(r"\s+", " ", line.split(":", 1)[1]).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine(**extra: str) -> dict[str, str]:
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--", "service", "transforms", "bench"):
        commit += " (+ uncommitted changes)"
    info = {
        "commit": commit,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count() or 0),
        "cpu": _cpu_model(),
        "memory": f"{_mem_total_kib() / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "kafka": kafka_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load average at start": load_average(),
    }
    info.update(extra)
    return info


def machine_line(info: Mapping[str, str]) -> str:
    parts = [
        f"commit `{info['commit']}`",
        info["date"],
        f"{info['cores']} cores ({info['cpu']})",
        f"{info['memory']} RAM",
        f"Python {info['python']}",
        f"Kafka {info['kafka']} (single local broker, replication factor 1)",
    ]
    parts += [
        f"{k} {v}"
        for k, v in info.items()
        if k not in {"commit", "date", "cores", "cpu", "memory", "python", "kafka", "os"}
    ]
    parts.append(info["os"])
    return ", ".join(parts)


# -- docs/benchmarks.md ------------------------------------------------------------------

_INTRO = """# Benchmarks

Produced by `make bench` (or one of `make bench-ingest`, `make bench-consumer`,
`make bench-e2e`, `make bench-console`; the code is in `bench/`). Each benchmark starts
its own Kafka broker and Postgres on 127.0.0.1, measures, and replaces its own section
below. Absolute numbers belong to the machine named in each section; the ratios against
the baseline measured in the same run on the same machine are what carries over to other
machines.
"""

SECTIONS = ("ingest", "consumer", "e2e", "console")


def _split(text: str) -> dict[str, str]:
    found = {}
    for name in SECTIONS:
        m = re.search(rf"<!-- bench:{name} -->\n(.*?)<!-- /bench:{name} -->\n", text, re.S)
        if m:
            found[name] = m.group(1)
    return found


def write_section(name: str, body: str, info: Mapping[str, str]) -> Path:
    """Replace (or add) section `name` of docs/benchmarks.md and refresh the header."""
    assert name in SECTIONS
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


# -- child processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process, in KiB; 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def vm_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Service:
    """A child process (`python -m service ...` or similar) with its output in a temp file.

    `peak_rss_kib` is read from /proc before the process is stopped (VmHWM dies with it).
    """

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self._log: IO[bytes] = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = self._log.name
        self.proc = subprocess.Popen(self.argv, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.peak_rss_kib = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def sample_memory(self) -> int:
        self.peak_rss_kib = max(self.peak_rss_kib, vm_hwm_kib(self.pid))
        return self.peak_rss_kib

    def tail(self, chars: int = 3000) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            fail(f"{self.name} exited with {self.proc.returncode}; its log ({self.log_path}):\n{self.tail()}")

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                fail(f"{self.name} did not answer {url} within {timeout:.0f} s; log {self.log_path}:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait (bounded), SIGKILL if needed; returns the exit code."""
        if self.proc.poll() is None:
            self.sample_memory()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def base_env(**extra: str) -> dict[str, str]:
    """The parent environment minus anything that could point a child at a real system."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHOPEE_", "INGEST_", "DATABASE_URL", "BATCH_", "SHOP_", "MAX_CONCURRENCY", "CONSUMER_"))
        and k not in ("KAFKA_API_KEY", "KAFKA_API_SECRET")
    }
    env.update(LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        fail(
            f"{name} is not set. Run through make (e.g. `make bench-ingest`), or as "
            f"`scripts/with-services.sh KAFKA_PORT PG_PORT .venv/bin/python -m bench.<name>`."
        )
        raise AssertionError  # unreachable
    if not any(h in value for h in ("127.0.0.1", "localhost")):
        fail(f"{name}={value} is not local: benchmarks only talk to 127.0.0.1")
    return value


def run_checked(argv: Sequence[str], env: Mapping[str, str], timeout: float = 120) -> str:
    done = subprocess.run(list(argv), env=dict(env), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        fail(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


# -- Kafka -------------------------------------------------------------------------------


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    finally:
        await admin.close()
    # wait until every partition has a leader, so the first produce does not stall
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        for name in names:
            while True:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(name)
                if parts and len(parts) == partitions:
                    break
                if time.monotonic() > deadline:
                    fail(f"topic {name} has no leaders after 30 s")
                await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


async def topic_records(bootstrap: str, topic: str) -> int:
    """Records in the topic: the sum over partitions of end offset minus start offset."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return 0
        end = await consumer.end_offsets(tps)
        start = await consumer.beginning_offsets(tps)
        return sum(end[tp] - start[tp] for tp in tps)
    finally:
        await consumer.stop()


# -- Postgres ----------------------------------------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    """The same server and credentials as `admin_url`, database `name`."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def fresh_database(admin_url: str, name: str) -> str:
    """CREATE DATABASE `name` (dropped first if left over) and return its URL."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(admin_url, name)


async def postgres_version(url: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()


def migrate(db_url: str) -> None:
    run_checked([PY, "-m", "service", "migrate"], base_env(DATABASE_URL=db_url))


def stamp() -> str:
    return time.strftime("%Y%m%d%H%M%S")


# -- profiles ----------------------------------------------------------------------------


def py_spy() -> str | None:
    here = Path(PY).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Spy:
    """py-spy sampling a running process (non-blocking, so it barely slows it down) until
    stop(); collapsed stacks go to a temp file. A no-op when py-spy is not installed."""

    def __init__(self, pid: int, name: str, max_seconds: float = 600, rate: int = 100) -> None:
        self.path = Path(tempfile.gettempdir()) / f"bench-{name}-{stamp()}.pyspy.txt"
        exe = py_spy()
        self.available = exe is not None
        self._proc: subprocess.Popen[bytes] | None = None
        if exe is not None:
            argv = [exe, "record", "-p", str(pid), "-d", str(int(max_seconds)), "-r", str(rate)]
            argv += ["--nonblocking", "--format", "raw", "-o", str(self.path)]
            self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> Path | None:
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        return self.path if self.path.exists() and self.path.stat().st_size else None


_LOOP_FRAMES = ("Runner.run ", "BaseEventLoop._run_once ", "Handle._run ")


def hot_spots(path: Path, top: int = 15, min_share: float = 0.02) -> list[tuple[float, float, str]]:
    """(inclusive share, self share, function) of the busiest functions in a py-spy raw
    profile, function level. Shares are of the samples taken in the event loop's thread,
    counting only frames below the loop (asyncio's Runner.run, or the callback the loop runs); the loop's own time (uvloop,
    callbacks without a Python frame of their own) is shown as "(event loop itself)"."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [re.sub(r":\d+\)$", ")", f).replace(str(ROOT) + "/", "") for f in stack.split(";")]
        frames = [re.sub(r"\(\S*/site-packages/", "(", f) for f in frames]
        loop = [i for i, f in enumerate(frames) if f.startswith(_LOOP_FRAMES)]
        if not loop:
            continue  # another thread
        frames = frames[loop[-1] + 1 :] or ["(event loop itself)"]
        n = int(count)
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
    if not total:
        return []
    rows = [(c / total, own.get(f, 0) / total, f) for f, c in inclusive.items() if c / total >= min_share]
    rows.sort(reverse=True)
    return rows[:top]


def hot_spots_markdown(path: Path | None, top: int = 15) -> str:
    if path is None:
        return "(no profile: install py-spy into the venv, `.venv/bin/pip install py-spy`)"
    rows = hot_spots(path, top)
    lines = ["| share of busy samples (incl.) | self | function |", "|---|---|---|"]
    lines += [f"| {inc:.0%} | {slf:.0%} | `{f}` |" for inc, slf, f in rows]
    return "\n".join(lines)


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


PARTNER_ID = 2001887
PARTNER_KEY = "bench_partner_key_not_secret"


def start_sandbox(db_url: str, shops: int, shop_base: int) -> tuple[Service, str]:
    """The sandbox Shopee (any shop, deterministic tokens, auto-orders, no latency, no rate
    limit) with `shops` shops' credentials stored in `db_url`; returns it and its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [PY, "-m", "service", "sandbox", "serve", "--port", str(port)]
    argv += ["--partner-id", str(PARTNER_ID), "--partner-key", PARTNER_KEY, "--log-level", "WARNING"]
    sandbox = Service("sandbox", argv, base_env())
    try:
        sandbox.wait_http(url + "/healthz")
        shops_argv = [
            PY,
            "-m",
            "service",
            "sandbox",
            "demo-shops",
            "--shops",
            str(shops),
            "--shop-id-base",
            str(shop_base),
        ]
        shops_argv += ["--partner-id", str(PARTNER_ID), "--partner-key", PARTNER_KEY, "--database-url", db_url]
        run_checked(shops_argv, base_env())
    except BaseException:
        sandbox.stop()
        raise
    return sandbox, url
