"""Fakes handed to the code under test through constructors: a clock the test moves by
hand, a clock that runs faster than real time, and an ingest sink that keeps what it was
given."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


class FakeClock:
    """A monotonic (or wall) clock the test moves by hand; `sleep` advances it instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


class ScaledClock:
    """Monotonic time running `speed` times faster than real time, with the matching sleep.

    For code that waits on real I/O as well as on its clock (a whole consumer against
    Kafka): a minute of its time passes in 60/speed real seconds."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._origin = time.monotonic()

    def __call__(self) -> float:
        return self._origin + (time.monotonic() - self._origin) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class FakeSink:
    """The ingest's durable sink, in memory; `fail` makes every send raise it, from the
    `fail_after`-th send on when that is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail: Exception | None = None
        self.fail_after: int | None = None
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, key: bytes, value: bytes, *, budget_seconds: float) -> str:
        if self.fail is not None and (self.fail_after is None or len(self.sent) >= self.fail_after):
            raise self.fail
        self.sent.append((topic, key, value))
        return "fake"

    async def ready(self) -> bool:
        return self.fail is None

    def on(self, topic: str) -> list[tuple[bytes, bytes]]:
        return [(k, v) for t, k, v in self.sent if t == topic]


@contextmanager
def environment_without_settings() -> Iterator[None]:
    """No variable Settings reads (nor SECRETS_DIR) in os.environ while inside: unit tests
    build Settings from what they pass in, not from the shell that runs them."""
    from service.settings import Settings

    with pytest.MonkeyPatch.context() as patch:
        for name in [*Settings.model_fields, "SECRETS_DIR"]:
            patch.delenv(name.upper(), raising=False)
        yield
