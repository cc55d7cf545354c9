"""The scheduler's choice of the next batches, on a fake clock, through its public methods."""

from __future__ import annotations

from service.consume.batcher import Batch, Item
from service.consume.scheduler import Scheduler
from service.consume.throttle import ShopThrottle
from service.records import OrderRecord
from service.types import Partition
from tests.fakes import FakeClock

TP0: Partition = ("orders", 0)
TP1: Partition = ("orders", 1)


def batch(shop: str, *offsets: int, partition: Partition = TP0, opened_at: float = 0.0) -> Batch:
    b = Batch(shop, opened_at)
    for offset in offsets:
        record = OrderRecord(shop_id=shop, order_sn=f"{shop}-{offset}", timestamp=1, event_id=f"e{offset}")
        b.add(Item(partition, offset, record))
    return b


def scheduler(clock: FakeClock, *, max_concurrency: int = 10, calls_per_minute: int = 30) -> Scheduler:
    throttle = ShopThrottle(calls_per_minute, window_seconds=60, margin_seconds=0, clock=clock, sleep=clock.sleep)
    return Scheduler(max_concurrency=max_concurrency, budget=throttle)


def started(s: Scheduler, clock: FakeClock) -> list[tuple[str, list[int]]]:
    return [(b.shop_id, [i.offset for i in b.items]) for b in s.start(clock())]


def test_one_batch_per_shop_in_flight_and_a_shops_batches_in_offset_order() -> None:
    clock = FakeClock()
    s = scheduler(clock)
    s.add(batch("a", 1, 2))
    s.add(batch("a", 3))
    assert started(s, clock) == [("a", [1, 2])]
    assert started(s, clock) == []  # the second waits for the first, however long
    clock.advance(3600)
    assert started(s, clock) == []
    s.finished("a")
    assert started(s, clock) == [("a", [3])]


def test_never_more_batches_in_flight_than_max_concurrency() -> None:
    clock = FakeClock()
    s = scheduler(clock, max_concurrency=2)
    for shop in ("a", "b", "c"):
        s.add(batch(shop, 1))
    assert started(s, clock) == [("a", [1]), ("b", [1])]
    assert s.in_flight == 2
    assert started(s, clock) == []
    s.finished("b")
    assert started(s, clock) == [("c", [1])]
    assert s.in_flight == 2


def test_shops_take_turns() -> None:
    clock = FakeClock()
    s = scheduler(clock, max_concurrency=1)
    s.add(batch("a", 1))
    s.add(batch("a", 2))
    s.add(batch("b", 3))
    s.add(batch("c", 4))
    order = []
    for _ in range(4):
        (b,) = s.start(clock())
        order.append((b.shop_id, b.items[0].offset))
        s.finished(b.shop_id)
    assert order == [("a", 1), ("b", 3), ("c", 4), ("a", 2)]


def test_a_handed_back_batch_waits_its_delay_then_goes_before_newer_batches() -> None:
    clock = FakeClock()
    s = scheduler(clock)
    s.add(batch("a", 1))
    (first,) = s.start(clock())
    s.add(batch("a", 2))
    s.finished("a")
    s.retry(first, not_before=clock() + 60)
    clock.advance(59.9)
    assert started(s, clock) == []
    clock.advance(0.1)
    assert started(s, clock) == [("a", [1])]
    s.finished("a")
    assert started(s, clock) == [("a", [2])]


def test_a_shop_out_of_call_budget_is_passed_over_without_holding_a_slot() -> None:
    clock = FakeClock()
    throttle = ShopThrottle(1, window_seconds=60, margin_seconds=0, clock=clock, sleep=clock.sleep)
    s = Scheduler(max_concurrency=1, budget=throttle)
    throttle.record("a", clock())  # a's one call this minute is spent
    s.add(batch("a", 1))
    s.add(batch("b", 2))
    assert started(s, clock) == [("b", [2])]
    s.finished("b")
    clock.advance(59)
    assert started(s, clock) == []
    clock.advance(1)
    assert started(s, clock) == [("a", [1])]


def test_revoked_partitions_leave_the_queues_and_other_records_stay() -> None:
    clock = FakeClock()
    s = scheduler(clock, max_concurrency=1)
    s.add(batch("a", 1, 2, partition=TP0))
    s.add(batch("b", 5, partition=TP0))
    mixed = batch("c", 7, partition=TP0)
    mixed.add(Item(TP1, 8, OrderRecord(shop_id="c", order_sn="c-8", timestamp=1, event_id="e8")))
    s.add(mixed)
    assert s.drop_partitions({TP0}) == 4
    assert s.queued("a") == s.queued("b") == 0
    assert started(s, clock) == [("c", [8])]


def test_a_retry_time_is_forgotten_with_the_revoked_batch() -> None:
    clock = FakeClock()
    s = scheduler(clock)
    s.add(batch("a", 1))
    (first,) = s.start(clock())
    s.finished("a")
    s.retry(first, not_before=clock() + 600)
    s.drop_partitions({TP0})
    s.add(batch("a", 9, partition=TP1))  # the shop's partition came back, or new records
    assert started(s, clock) == [("a", [9])]
