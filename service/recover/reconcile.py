"""The reconciliation sweep: compare Shopee's order list with shopee_orders_raw.

For every active shop, get_order_list by update_time from the shop's checkpoint (first
run: RECOVER_LOOKBACK_SECONDS back) up to now minus RECOVER_LAG_SECONDS, in windows of
at most 15 days, 100 orders a page, following next_cursor. An order that has no row, or
whose row's status differs from Shopee's (or whose row's update_time is older than the
window, so Shopee changed it since), becomes a record on the main topic through the
ingest's pipeline and sink: the normal consumer path fetches its detail and upserts it.
The checkpoint moves past a window only once that window's records are durable.

Every call (get_order_list, token refresh) waits for the shop's own share of Shopee's
quota (RECOVER_SHOP_CALLS_PER_MINUTE, a ShopThrottle of its own). A shop whose refresh
token Shopee refuses is recorded and skipped until its credentials change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from service.consume.retry import Exhausted, RetryPolicy
from service.consume.store import Store
from service.consume.throttle import ShopThrottle
from service.consume.worker import ShopeeAPI
from service.errors import CredentialsError, GatewayError, ShopeeAuthError
from service.recover.api import MAX_WINDOW_SECONDS, OrderPage, RecoverAPI
from service.recover.metrics import RecoverMetrics
from service.recover.produce import Outcome, Producer
from service.recover.store import RecoverStore, RunTotals, ShopState
from service.settings import Settings
from service.types import Credentials, TokenPair

log = logging.getLogger(__name__)

SOURCE = "reconcile"


def windows(start: int, end: int, size: int = MAX_WINDOW_SECONDS) -> Iterator[tuple[int, int]]:
    """[start, end] cut into consecutive windows of at most `size` seconds.

    Shopee's bounds are inclusive, so each window starts one second after the last one
    ends: an order updated on a boundary is listed once, not twice."""
    if start >= end:
        return
    while True:
        stop = min(start + size, end)
        yield start, stop
        if stop >= end:
            return
        start = stop + 1


def verdict(stored: tuple[str | None, int | None] | None, status: str | None, window_from: int) -> str | None:
    """Why the order must be fetched again ("missing", "stale"), or None when the row is current."""
    if stored is None:
        return "missing"
    stored_status, stored_update_time = stored
    if status is not None and stored_status != status:
        return "stale"
    if stored_update_time is None or stored_update_time < window_from:
        return "stale"
    return None


@dataclass(frozen=True, slots=True)
class ShopResult:
    seen: int = 0
    produced: int = 0
    error: str | None = None


class _ShopFailed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class ReconcileSweep:
    kind = "reconcile"

    def __init__(
        self,
        settings: Settings,
        *,
        api: RecoverAPI,
        shopee: ShopeeAPI,
        store: Store,
        recover_store: RecoverStore,
        producer: Producer,
        throttle: ShopThrottle,
        metrics: RecoverMetrics,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._api = api
        self._shopee = shopee
        self._store = store
        self._recover = recover_store
        self._producer = producer
        self._throttle = throttle
        self._metrics = metrics
        self._clock = clock
        # the consumer's policy: capped attempts, backoff with jitter, at least Retry-After
        self._retry = RetryPolicy.from_settings(settings, sleep=sleep)

    async def run(self) -> RunTotals:
        shops = await self._recover.active_shops()
        blocked = [s.shop_id for s in shops if s.blocked]
        self._metrics.shops_blocked.set(len(blocked))
        for shop_id in blocked:
            log.warning("shop skipped: Shopee refused its refresh token; re-authorise it", extra={"shop_id": shop_id})
        gate = asyncio.Semaphore(self._settings.recover_concurrency)

        async def one(shop: ShopState) -> ShopResult:
            async with gate:
                return await self.reconcile_shop(shop)

        results = await asyncio.gather(*(one(s) for s in shops if not s.blocked))
        failed = [r.error for r in results if r.error]
        notes = (
            [f"{len(shops)} active shops"] + failed + [f"shop {s}: blocked (refresh token refused)" for s in blocked]
        )
        return RunTotals(
            seen=sum(r.seen for r in results),
            produced=sum(r.produced for r in results),
            errors=len(failed) + len(blocked),
            status="errors" if failed or blocked else "ok",
            detail="; ".join(notes),
        )

    async def reconcile_shop(self, shop: ShopState) -> ShopResult:
        now = int(self._clock())
        end = now - self._settings.recover_lag_seconds
        start = (
            shop.reconciled_until
            if shop.reconciled_until is not None
            else now - self._settings.recover_lookback_seconds
        )
        seen = produced = 0
        try:
            creds = await self._credentials(shop.shop_id)
            for window_from, window_to in windows(start, end):
                cursor = ""
                while True:
                    page, creds = await self._page(shop.shop_id, creds, window_from, window_to, cursor)
                    seen += len(page.orders)
                    produced += await self._compare(shop.shop_id, page, window_from)
                    if not page.more:
                        break
                    cursor = page.next_cursor
                await self._recover.advance(shop.shop_id, window_to)
        except _ShopFailed as exc:
            self._metrics.shop_failures.labels(exc.reason).inc()
            log.warning("shop not reconciled", extra={"shop_id": shop.shop_id, "reason": exc.reason, "error": str(exc)})
            if exc.reason != "refresh_token_rejected":
                await self._recover.shop_failed(shop.shop_id, f"{exc.reason}: {exc}")
            return ShopResult(seen, produced, f"shop {shop.shop_id}: {exc.reason}")
        return ShopResult(seen, produced)

    async def _compare(self, shop_id: str, page: OrderPage, window_from: int) -> int:
        self._metrics.orders_checked.inc(len(page.orders))
        stored = await self._recover.stored_orders(shop_id, [sn for sn, _ in page.orders])
        produced = 0
        for sn, status in page.orders:
            reason = verdict(stored.get(sn), status, window_from)
            if reason is None:
                continue
            try:
                outcome = await self._producer.submit(_body(shop_id, sn, status, int(self._clock())), SOURCE)
            except GatewayError as exc:
                raise _ShopFailed(exc.reason, str(exc)) from exc
            if outcome is Outcome.FORWARDED:
                produced += 1
                self._metrics.orders_produced.labels(reason).inc()
        return produced

    # -- Shopee calls, throttled and retried ---------------------------------------------

    async def _page(
        self, shop: str, creds: Credentials, window_from: int, window_to: int, cursor: str
    ) -> tuple[OrderPage, Credentials]:
        refreshed = False
        attempt = 0
        while True:
            await self._throttle.acquire(shop)
            try:
                page = await self._api.order_page(shop, creds.access_token, window_from, window_to, cursor)
                return page, creds
            except ShopeeAuthError as exc:
                self._metrics.shopee_errors.labels("get_order_list", exc.reason).inc()
                if refreshed:
                    raise _ShopFailed(exc.reason, str(exc)) from exc
                refreshed = True
                creds = await self._rotate(shop, creds.access_token)
            except GatewayError as exc:
                self._metrics.shopee_errors.labels("get_order_list", exc.reason).inc()
                if not exc.retriable:
                    raise _ShopFailed(exc.reason, str(exc)) from exc
                attempt += 1
                try:
                    await self._retry.after_failure(attempt, exc, shop)
                except Exhausted:
                    raise _ShopFailed(exc.reason, str(exc)) from exc

    async def _credentials(self, shop: str) -> Credentials:
        try:
            creds = await self._store.credentials(shop)
        except GatewayError as exc:
            raise _ShopFailed(exc.reason, str(exc)) from exc
        if creds.needs_refresh(self._now(), self._settings.token_refresh_margin_seconds):
            creds = await self._rotate(shop, None)
        return creds

    async def _rotate(self, shop: str, stale_access_token: str | None) -> Credentials:
        """The consumer's row-locked rotation: one refresh per shop at a time, everywhere."""
        spent: list[str] = []

        async def refresh(current: Credentials) -> TokenPair:
            await self._throttle.acquire(shop)
            spent.append(current.refresh_token)
            return await self._shopee.refresh_access_token(shop, current.refresh_token)

        try:
            return await self._store.rotate_tokens(
                shop,
                stale_access_token=stale_access_token,
                refresh=refresh,
                now=self._now(),
                margin_seconds=self._settings.token_refresh_margin_seconds,
            )
        except CredentialsError as exc:
            self._metrics.shopee_errors.labels("access_token", exc.reason).inc()
            if spent and exc.reason == "refresh_token_rejected":
                await self._recover.shop_failed(shop, f"{exc.reason}: {exc}", rejected_refresh_token=spent[-1])
            raise _ShopFailed(exc.reason, str(exc)) from exc
        except GatewayError as exc:
            self._metrics.shopee_errors.labels("access_token", exc.reason).inc()
            raise _ShopFailed(exc.reason, str(exc)) from exc

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)


def _body(shop_id: str, order_sn: str, status: str | None, now: int) -> dict[str, Any]:
    """A code-3 push body for an order Shopee listed (no update_time: the list has none)."""
    data: dict[str, Any] = {"ordersn": order_sn, "status": status}
    return {"data": data, "shop_id": shop_id, "code": 3, "timestamp": now}
