from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from service.consume.batcher import Batch, Item
from service.consume.metrics import ConsumerMetrics
from service.consume.shopee import OrderDetails
from service.consume.throttle import ShopThrottle
from service.consume.worker import Worker
from service.errors import (
    CredentialsError,
    GatewayError,
    ShopeeAuthError,
    ShopeePermanent,
    ShopeeRateLimited,
    ShopeeTransient,
    SinkUnavailable,
)
from service.records import DeadLetter, OrderRecord
from service.settings import Settings
from service.types import Credentials, OrderRow, Refresher, TokenPair
from tests.consume_helpers import FakeClock

WALL = 1_700_000_000.0


class FakeShopee:
    def __init__(self, *failures: GatewayError, unknown: Sequence[str] = ()) -> None:
        self.failures = list(failures)
        self.unknown = set(unknown)
        self.calls: list[tuple[str, list[str]]] = []
        self.refreshes: list[str] = []

    async def get_order_detail(self, shop_id: str, access_token: str, order_sns: Sequence[str]) -> OrderDetails:
        self.calls.append((access_token, list(order_sns)))
        if self.failures:
            raise self.failures.pop(0)
        found = [
            {"order_sn": sn, "order_status": "SHIPPED", "update_time": 99} for sn in order_sns if sn not in self.unknown
        ]
        return OrderDetails(found, [sn for sn in order_sns if sn in self.unknown])

    async def refresh_access_token(self, shop_id: str, refresh_token: str) -> TokenPair:
        self.refreshes.append(refresh_token)
        n = len(self.refreshes)
        expires = dt.datetime.fromtimestamp(WALL + 14400, dt.UTC)
        return TokenPair(f"access-{n}", f"refresh-{n}", expires, None)


class FakeStore:
    def __init__(self, creds: Credentials | None, *upsert_failures: GatewayError) -> None:
        self.creds = creds
        self.rows: dict[tuple[str, str], OrderRow] = {}
        self.upsert_failures = list(upsert_failures)

    async def credentials(self, shop_id: str) -> Credentials:
        if self.creds is None:
            raise CredentialsError("unknown shop", reason="shop_unknown")
        return self.creds

    async def rotate_tokens(
        self,
        shop_id: str,
        *,
        stale_access_token: str | None,
        refresh: Refresher,
        now: dt.datetime,
        margin_seconds: float,
    ) -> Credentials:
        assert self.creds is not None
        pair = await refresh(self.creds)
        self.creds = Credentials(shop_id, pair.access_token, pair.refresh_token, pair.access_token_expires_at)
        return self.creds

    async def upsert_orders(self, rows: Sequence[OrderRow]) -> None:
        if self.upsert_failures:
            raise self.upsert_failures.pop(0)
        for row in rows:
            self.rows[(row.shop_id, row.order_sn)] = row


class FakeDeadLetters:
    def __init__(self, *failures: GatewayError) -> None:
        self.letters: list[DeadLetter] = []
        self.failures = list(failures)

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.letters.extend(letters)


def batch(*sns: str, shop: str = "42") -> Batch:
    b = Batch(shop, opened_at=0)
    for offset, sn in enumerate(sns):
        record = OrderRecord(
            shop_id=shop, order_sn=sn, order_status="READY_TO_SHIP", timestamp=1, update_time=10, event_id=f"e{offset}"
        )
        b.add(Item(("orders", 0), offset, record))
    return b


def make_worker(
    shopee: FakeShopee,
    store: FakeStore,
    dead: FakeDeadLetters | None = None,
    *,
    limit: int = 100,
    clock: FakeClock | None = None,
    **settings: object,
) -> tuple[Worker, FakeClock, FakeDeadLetters]:
    clock = clock or FakeClock(0)
    dead = dead or FakeDeadLetters()
    worker = Worker(
        Settings(retry_max_attempts=4, retry_base_seconds=1, retry_max_seconds=30, **settings),  # type: ignore[arg-type]
        shopee=shopee,
        store=store,
        dead_letters=dead,
        throttle=ShopThrottle(limit, window_seconds=60, clock=clock, sleep=clock.sleep),
        metrics=ConsumerMetrics(CollectorRegistry()),
        sleep=clock.sleep,
        wall_clock=lambda: WALL,
        jitter=lambda: 0.0,
    )
    return worker, clock, dead


def creds(expires_in: float | None = None) -> Credentials:
    expires = None if expires_in is None else dt.datetime.fromtimestamp(WALL + expires_in, dt.UTC)
    return Credentials("42", "access-0", "refresh-0", expires)


async def test_batch_is_fetched_in_one_call_and_written_with_shopee_status() -> None:
    shopee, store = FakeShopee(), FakeStore(creds())
    worker, _, dead = make_worker(shopee, store)
    result = await worker.process(batch("A", "B", "A"))
    assert result.durable
    assert shopee.calls == [("access-0", ["A", "B"])]
    assert {k[1]: (r.order_status, r.update_time) for k, r in store.rows.items()} == {
        "A": ("SHIPPED", 99),
        "B": ("SHIPPED", 99),
    }
    assert dead.letters == []


async def test_unknown_orders_are_dead_lettered_one_letter_per_record() -> None:
    shopee, store = FakeShopee(unknown=["X"]), FakeStore(creds())
    worker, _, dead = make_worker(shopee, store)
    result = await worker.process(batch("A", "X", "X"))
    assert result.durable
    assert [k[1] for k in store.rows] == ["A"]
    assert [(d.reason, d.source, d.record["order_sn"]) for d in dead.letters if d.record] == [
        ("order_not_found", "consumer", "X"),
        ("order_not_found", "consumer", "X"),
    ]


async def test_rejected_token_is_refreshed_once_and_the_call_retried() -> None:
    shopee = FakeShopee(ShopeeAuthError("Invalid access_token."))
    store = FakeStore(creds())
    worker, _, dead = make_worker(shopee, store)
    result = await worker.process(batch("A"))
    assert result.durable
    assert shopee.refreshes == ["refresh-0"]
    assert [token for token, _ in shopee.calls] == ["access-0", "access-1"]
    assert store.creds is not None
    assert store.creds.refresh_token == "refresh-1"
    assert dead.letters == []


async def test_token_about_to_expire_is_refreshed_before_the_call() -> None:
    shopee, store = FakeShopee(), FakeStore(creds(expires_in=60))
    worker, _, _ = make_worker(shopee, store, token_refresh_margin_seconds=300)
    assert (await worker.process(batch("A"))).durable
    assert shopee.refreshes == ["refresh-0"]
    assert [token for token, _ in shopee.calls] == ["access-1"]


async def test_transient_failures_are_retried_with_backoff_and_nothing_dead_lettered() -> None:
    shopee = FakeShopee(ShopeeTransient("500"), ShopeeRateLimited("429", retry_after_seconds=9))
    store = FakeStore(creds())
    worker, clock, dead = make_worker(shopee, store)
    result = await worker.process(batch("A"))
    assert result.durable
    assert len(shopee.calls) == 3
    assert clock.sleeps == [0.5, 9]  # base 1s * 2^0 * (0.5 + jitter 0); Retry-After wins over 1s
    assert dead.letters == []
    assert len(store.rows) == 1


async def test_transient_failures_beyond_the_budget_keep_the_batch_for_later() -> None:
    shopee = FakeShopee(*(ShopeeTransient("500") for _ in range(10)))
    store = FakeStore(creds())
    worker, _, dead = make_worker(shopee, store)
    result = await worker.process(batch("A", "B"))
    assert not result.durable
    assert result.retry_in == 30
    assert len(shopee.calls) == 4
    assert dead.letters == []
    assert store.rows == {}


async def test_permanent_error_dead_letters_every_original_record_with_its_reason() -> None:
    shopee = FakeShopee(ShopeePermanent("bad", reason="shopee_error_param"))
    store = FakeStore(creds())
    worker, _, dead = make_worker(shopee, store)
    result = await worker.process(batch("A", "B", "A"))
    assert result.durable
    assert result.dead_lettered == 3
    assert {d.reason for d in dead.letters} == {"shopee_error_param"}
    assert sorted(d.record["event_id"] for d in dead.letters if d.record) == ["e0", "e1", "e2"]
    assert store.rows == {}


async def test_unknown_shop_is_dead_lettered_without_calling_shopee() -> None:
    shopee, store = FakeShopee(), FakeStore(None)
    worker, _, dead = make_worker(shopee, store)
    result = await worker.process(batch("A"))
    assert result.durable
    assert shopee.calls == []
    assert [d.reason for d in dead.letters] == ["shop_unknown"]
    assert dead.letters[0].shop_id == "42"


async def test_store_outage_is_retried_and_dead_letter_outage_defers_the_batch() -> None:
    from service.errors import StoreError

    shopee, store = FakeShopee(), FakeStore(creds(), StoreError("down"))
    worker, _, _ = make_worker(shopee, store)
    assert (await worker.process(batch("A"))).durable
    assert len(store.rows) == 1

    dead = FakeDeadLetters(*(SinkUnavailable("kafka down") for _ in range(10)))
    worker, _, _ = make_worker(FakeShopee(unknown=["X"]), FakeStore(creds()), dead)
    assert not (await worker.process(batch("X"))).durable


async def test_every_call_including_retries_counts_against_the_shop_limit() -> None:
    shopee = FakeShopee(ShopeeTransient("500"), ShopeeTransient("500"))
    store = FakeStore(creds())
    worker, clock, _ = make_worker(shopee, store, limit=2)
    assert (await worker.process(batch("A"))).durable
    # calls at t=0 and t=0.5 use the budget; the third waits for t=60
    assert clock() >= 60


async def test_an_undecodable_record_is_dead_lettered_through_the_retry_policy() -> None:
    dead = FakeDeadLetters(*(SinkUnavailable("dead-letter topic down") for _ in range(5)))
    worker, clock, _ = make_worker(FakeShopee(), FakeStore(creds()), dead)
    await worker.dead_letter_undecodable(b"shop-42", b"\xffnot json", "unexpected byte")
    # 4 attempts with jittered backoff (jitter 0: half of 1, 2, 4 s), then retry_max_seconds, then a new round
    assert clock.sleeps == [0.5, 1.0, 2.0, 30, 0.5]
    (letter,) = dead.letters
    assert (letter.reason, letter.source, letter.shop_id) == ("undecodable_record", "consumer", "42")
    assert letter.raw_body() == b"\xffnot json"
    assert letter.failed_at_ms == WALL * 1000
