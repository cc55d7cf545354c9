"""Where a benchmarked process spends its time: py-spy profiles and CPU seconds."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.processes import ROOT


def stamp() -> str:
    return time.strftime("%Y%m%d%H%M%S")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
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
