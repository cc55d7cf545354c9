"""Child processes for tests, benchmarks and scripts: one runner and one environment builder.

`Process` starts a command with its output in a temporary file, can wait until it answers
HTTP, kill it (SIGKILL, as a crash would) or stop it (SIGTERM, a bounded wait, then
SIGKILL), and reads its peak memory before it goes. `child_env` is the parent's
environment without anything the service would read as a setting, plus what the caller
gives, so a child never talks to a system the caller did not name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_argv(*args: str) -> list[str]:
    """`python -m service ...` with this interpreter."""
    return [sys.executable, "-m", "service", *args]


def child_env(**values: str) -> dict[str, str]:
    from service.settings import Settings

    settings = {name.upper() for name in Settings.model_fields} | {"SECRETS_DIR"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in settings}
    env.update(LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    env.update(values)
    return env


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Process:
    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.name = name
        self._log: IO[bytes] = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(self._log.name)
        self.popen = subprocess.Popen(list(argv), env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.peak_rss_kib = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, last: int | None = None) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text if last is None else text[-last:]

    def rss_kib(self) -> int:
        return _status_kib(self.pid, "VmRSS")

    def sample_memory(self) -> int:
        """Peak resident set size (VmHWM) so far, in KiB; read before the process goes."""
        self.peak_rss_kib = max(self.peak_rss_kib, _status_kib(self.pid, "VmHWM"))
        return self.peak_rss_kib

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}: {self.output(3000)}")

    def wait_http(self, url: str, seconds: float = 60) -> None:
        """Until `url` answers 200; fails if the process exits or `seconds` (generous) pass."""
        deadline = time.monotonic() + seconds
        while True:
            self.check_alive()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer {url} within {seconds:.0f} s: {self.output(3000)}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, a bounded wait, SIGKILL if needed; returns the exit code."""
        if self.alive():
            self.sample_memory()
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return int(self.popen.returncode)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
