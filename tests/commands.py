"""Running `python -m service <command>` as a real process, for start-up and shutdown tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

COMMAND_TIMEOUT_SECONDS = 120

#: settings every command may need; tests override what they test
BASE_ENV = {
    "SHOPEE_PARTNER_ID": "2001887",
    "SHOPEE_PARTNER_KEY": "test_partner_key_do_not_use",
    "SHOPEE_CALLBACK_URL": "https://receiver.example.com/shopee/push",
    "CONSUMER_METRICS_PORT": "0",
    "LOG_LEVEL": "INFO",
}


def command_env(**settings: str) -> dict[str, str]:
    """A clean environment: nothing of the caller's gateway settings leaks in."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(BASE_ENV)
    env.update(settings)
    return env


@dataclass
class Finished:
    code: int
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_command(args: list[str], env: dict[str, str]) -> Finished:
    out = subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    return Finished(out.returncode, out.stderr + out.stdout)


class Running:
    """A command running in the background, its output in a temporary file."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "service", *args], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def wait_for_output(self, text: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.output():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never logged {text!r}: {self.output()[-3000:]}")
            time.sleep(0.1)

    def wait_until(self, condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.output()[-3000:]}")
            time.sleep(0.1)

    def terminate_and_wait(self, bound_seconds: float) -> int | None:
        """SIGTERM, then the exit code if the process ended within `bound_seconds`, else None."""
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=bound_seconds)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._log.close()
