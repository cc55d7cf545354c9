"""Fakes handed to the code under test through constructors: a clock the test moves by
hand, and an ingest sink that keeps what it was given."""

from __future__ import annotations


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
