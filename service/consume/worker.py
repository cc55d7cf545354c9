"""One batch, start to finish: credentials -> Shopee -> store, or dead letters.

The choice between retrying and dead-lettering is made by `error.retriable` alone.
Retriable failures are retried through one RetryPolicy (retry.py: capped attempts,
backoff with jitter); when they outlast it the batch is handed back
(`BatchResult.retry_in`) and its records stay uncommitted: waiting never loses an
order, a dead letter needs a replay.
Permanent failures dead-letter each original record, with the reason, so `replay` can
re-publish every one of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from service.consume.batcher import Batch, Item
from service.consume.deadletters import DeadLetterSink
from service.consume.metrics import ConsumerMetrics
from service.consume.retry import Exhausted, RetryPolicy
from service.consume.shopee import OrderDetails
from service.consume.throttle import ShopThrottle
from service.errors import GatewayError, ShopeeAuthError
from service.records import DeadLetter, OrderRecord
from service.settings import Settings
from service.types import Credentials, OrderRow, Refresher, TokenPair

log = logging.getLogger(__name__)


class ShopeeAPI(Protocol):
    async def get_order_detail(self, shop_id: str, access_token: str, order_sns: Sequence[str]) -> OrderDetails: ...

    async def refresh_access_token(self, shop_id: str, refresh_token: str) -> TokenPair: ...


class StoreAPI(Protocol):
    async def credentials(self, shop_id: str) -> Credentials: ...

    async def rotate_tokens(
        self,
        shop_id: str,
        *,
        stale_access_token: str | None,
        refresh: Refresher,
        now: dt.datetime,
        margin_seconds: float,
    ) -> Credentials: ...

    async def upsert_orders(self, rows: Sequence[OrderRow]) -> None: ...


@dataclass(frozen=True, slots=True)
class BatchResult:
    """`durable`: every record's outcome is durable. Otherwise retry the batch in `retry_in` s."""

    durable: bool
    written: int = 0
    dead_lettered: int = 0
    retry_in: float = 0.0


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        shopee: ShopeeAPI,
        store: StoreAPI,
        dead_letters: DeadLetterSink,
        throttle: ShopThrottle,
        metrics: ConsumerMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._shopee = shopee
        self._store = store
        self._dead_letters = dead_letters
        self._throttle = throttle
        self._metrics = metrics
        self._wall = wall_clock
        self._retry = RetryPolicy.from_settings(
            settings, sleep=sleep, jitter=jitter, on_retry=lambda exc: metrics.retries.labels(exc.reason).inc()
        )

    # -- entry point -------------------------------------------------------------------

    async def process(self, batch: Batch) -> BatchResult:
        """Make every record of `batch` durable (row or dead letter), or say when to retry."""
        try:
            details = await self._fetch(batch)
        except Exhausted as exc:
            return self._retry_later(batch, exc.last)
        except GatewayError as exc:
            assert not exc.retriable
            log.warning(
                "batch dead-lettered",
                extra={"shop_id": batch.shop_id, "reason": exc.reason, "records": len(batch.items), "error": str(exc)},
            )
            return await self._finish(batch, [], batch.items, exc.reason, str(exc))
        found = {str(o.get("order_sn")): o for o in details.orders}
        rows = [self._row(record, found[sn]) for sn, record in batch.latest.items() if sn in found]
        missing = set(details.missing) | {sn for sn in batch.latest if sn not in found}
        unknown = [item for item in batch.items if item.record.order_sn in missing]
        return await self._finish(batch, rows, unknown, "order_not_found", "Shopee does not know this order")

    # -- steps ---------------------------------------------------------------------------

    async def _fetch(self, batch: Batch) -> OrderDetails:
        """Credentials and get_order_detail, with one token refresh when Shopee rejects the token."""
        shop = batch.shop_id
        attempts = 0
        creds: Credentials | None = None
        refreshed = False
        while True:
            try:
                if creds is None:
                    creds = await self._credentials(shop)
                return await self._call_order_detail(shop, creds.access_token, batch.order_sns)
            except ShopeeAuthError as exc:
                if not refreshed and creds is not None:
                    refreshed = True
                    rotate = functools.partial(self._rotate, shop, creds.access_token)
                    creds = await self._retry.run(rotate, shop)
                    continue
                last: GatewayError = exc
            except GatewayError as exc:
                if not exc.retriable:
                    raise
                last = exc
            attempts += 1
            await self._retry.after_failure(attempts, last, shop)

    async def _credentials(self, shop: str) -> Credentials:
        creds = await self._store.credentials(shop)
        if creds.needs_refresh(self._now(), self._settings.token_refresh_margin_seconds):
            creds = await self._rotate(shop, None)
        return creds

    async def _rotate(self, shop: str, stale_access_token: str | None) -> Credentials:
        refreshed = False

        async def refresh(current: Credentials) -> TokenPair:
            nonlocal refreshed
            await self._throttled(shop)
            start = time.perf_counter()
            try:
                pair = await self._shopee.refresh_access_token(shop, current.refresh_token)
            except GatewayError as exc:
                self._metrics.shopee_calls.labels("access_token", exc.reason).observe(time.perf_counter() - start)
                self._metrics.token_refreshes.labels("failed").inc()
                raise
            self._metrics.shopee_calls.labels("access_token", "ok").observe(time.perf_counter() - start)
            refreshed = True
            return pair

        creds = await self._store.rotate_tokens(
            shop,
            stale_access_token=stale_access_token,
            refresh=refresh,
            now=self._now(),
            margin_seconds=self._settings.token_refresh_margin_seconds,
        )
        self._metrics.token_refreshes.labels("refreshed" if refreshed else "reused").inc()
        if refreshed:
            log.info("access token refreshed", extra={"shop_id": shop})
        return creds

    async def _call_order_detail(self, shop: str, token: str, sns: list[str]) -> OrderDetails:
        await self._throttled(shop)
        start = time.perf_counter()
        try:
            details = await self._shopee.get_order_detail(shop, token, sns)
        except GatewayError as exc:
            self._metrics.shopee_calls.labels("order_detail", exc.reason).observe(time.perf_counter() - start)
            raise
        self._metrics.shopee_calls.labels("order_detail", "ok").observe(time.perf_counter() - start)
        return details

    async def _throttled(self, shop: str) -> None:
        """Every Shopee call, retries and refreshes included, counts against the shop's limit."""
        waited = await self._throttle.acquire(shop)
        self._metrics.throttle_wait.observe(waited)

    async def _finish(
        self, batch: Batch, rows: list[OrderRow], dead: Sequence[Item], reason: str, detail: str
    ) -> BatchResult:
        try:
            if rows:
                await self._retry.run(lambda: self._upsert(rows), batch.shop_id)
            if dead:
                letters = [self._letter(item, reason, detail, batch.requeues + 1) for item in dead]
                await self._retry.run(lambda: self._dead_letters.send(letters), batch.shop_id)
                self._metrics.dead_letters.labels(reason).inc(len(letters))
        except Exhausted as exc:
            return self._retry_later(batch, exc.last)
        now_ms = self._wall() * 1000
        written = {row.order_sn for row in rows}
        for item in batch.items:
            if item.record.order_sn in written:
                self._metrics.end_to_end.observe(max(0.0, (now_ms - item.record.timestamp) / 1000))
        self._metrics.orders_written.inc(len(rows))
        self._metrics.batches.labels("dead_lettered" if dead and not rows else "done").inc()
        return BatchResult(durable=True, written=len(rows), dead_lettered=len(dead))

    async def dead_letter_undecodable(self, key: bytes | None, value: bytes, detail: str) -> None:
        """Keep a record the consumer cannot decode as a dead letter; return once it is durable.

        Retried like every other step; when the attempts are spent it waits and tries again,
        so the record's offset stays uncommitted until its letter is durable.
        """
        shop = key[5:].decode("utf-8", "replace") if key is not None and key.startswith(b"shop-") else None
        letter = DeadLetter.for_raw_body(
            "undecodable_record", detail, value, int(self._wall() * 1000), shop, source="consumer"
        )
        await self._retry.run_until_done(lambda: self._dead_letters.send([letter]), shop)
        self._metrics.dead_letters.labels(letter.reason).inc()

    async def _upsert(self, rows: list[OrderRow]) -> None:
        start = time.perf_counter()
        await self._store.upsert_orders(rows)
        self._metrics.upsert_latency.observe(time.perf_counter() - start)

    def _retry_later(self, batch: Batch, error: GatewayError) -> BatchResult:
        self._metrics.batches.labels("retry_later").inc()
        delay = self._retry.later_seconds
        log.warning(
            "batch kept uncommitted; retrying later",
            extra={"shop_id": batch.shop_id, "reason": error.reason, "error": str(error), "retry_in_s": delay},
        )
        return BatchResult(durable=False, retry_in=delay)

    # -- helpers -------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._wall(), dt.UTC)

    @staticmethod
    def _row(record: OrderRecord, detail: dict[str, Any]) -> OrderRow:
        """order_status and update_time from Shopee's detail when present, else from the push."""
        status = detail.get("order_status")
        update_time = detail.get("update_time")
        return OrderRow(
            shop_id=record.shop_id,
            order_sn=record.order_sn,
            order_status=status if isinstance(status, str) and status else record.order_status,
            update_time=update_time
            if isinstance(update_time, int) and not isinstance(update_time, bool)
            else record.update_time,
            order_detail=detail,
            event_id=record.event_id,
            record_timestamp_ms=record.timestamp,
        )

    def _letter(self, item: Item, reason: str, detail: str, attempts: int) -> DeadLetter:
        return DeadLetter(
            reason=reason,
            detail=detail[:500],
            source="consumer",
            failed_at_ms=int(self._wall() * 1000),
            shop_id=item.record.shop_id,
            record=item.record.as_dict(),
            attempts=attempts,
        )
