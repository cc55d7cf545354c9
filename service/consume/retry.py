"""The consumer's retry policy: capped attempts, exponential backoff with jitter.

Every step that talks to Shopee, Postgres or the dead-letter topic retries through one
policy, chosen by `error.retriable` alone. When the attempts are spent the step raises
`Exhausted` and the caller hands its work back for a later try (`later_seconds`):
waiting never loses an order, while a dead letter would need a replay. Sleep and jitter
are passed in, so tests run the whole schedule on a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from service.errors import GatewayError, ShopeeRateLimited
from service.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
#: called before each backoff sleep with the error (e.g. to count retries by reason)
OnRetry = Callable[[GatewayError], None]


class Exhausted(Exception):
    """A retriable step failed `max_attempts` times; `last` is its last error."""

    def __init__(self, last: GatewayError) -> None:
        super().__init__(str(last))
        self.last = last


class RetryPolicy:
    def __init__(
        self,
        *,
        max_attempts: int,
        base_seconds: float,
        max_seconds: float,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.max_attempts = max(1, max_attempts)
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.sleep = sleep
        self._jitter = jitter
        self._on_retry = on_retry

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: object) -> RetryPolicy:
        return cls(
            max_attempts=settings.retry_max_attempts,
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def later_seconds(self) -> float:
        """How long work waits after its attempts are spent, before it is tried again."""
        return self.max_seconds

    def backoff_seconds(self, attempt: int, error: GatewayError) -> float:
        """Exponential backoff with jitter (half fixed, half random), at least Retry-After."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        delay = ceiling * (0.5 + 0.5 * self._jitter())
        if isinstance(error, ShopeeRateLimited) and error.retry_after_seconds is not None:
            delay = max(delay, min(error.retry_after_seconds, self.max_seconds))
        return float(delay)

    async def after_failure(self, attempt: int, error: GatewayError, shop: str | None = None) -> None:
        """Attempt number `attempt` failed with a retriable `error`: wait, or raise Exhausted."""
        if attempt >= self.max_attempts:
            raise Exhausted(error) from error
        delay = self.backoff_seconds(attempt, error)
        if self._on_retry is not None:
            self._on_retry(error)
        log.info(
            "retrying after a transient failure",
            extra={"shop_id": shop, "reason": error.reason, "attempt": attempt, "delay_s": round(delay, 3)},
        )
        await self.sleep(delay)

    async def run(self, step: Callable[[], Awaitable[T]], shop: str | None = None) -> T:
        """Run `step`, retrying retriable errors; Exhausted when the attempts are spent."""
        attempt = 0
        while True:
            try:
                return await step()
            except GatewayError as exc:
                if not exc.retriable:
                    raise
                attempt += 1
                await self.after_failure(attempt, exc, shop)

    async def run_until_done(self, step: Callable[[], Awaitable[T]], shop: str | None = None) -> T:
        """`run`, and after each spent round wait `later_seconds` and start a new round."""
        while True:
            try:
                return await self.run(step, shop)
            except Exhausted as exc:
                log.warning(
                    "retries spent; trying again later",
                    extra={"shop_id": shop, "reason": exc.last.reason, "retry_in_s": self.later_seconds},
                )
                await self.sleep(self.later_seconds)
