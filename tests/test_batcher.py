from __future__ import annotations

from service.consume.batcher import Batcher, Item
from service.records import OrderRecord

TP0 = ("orders", 0)
TP1 = ("orders", 1)


def rec(shop: str, sn: str, update_time: int | None = 1, status: str = "READY_TO_SHIP") -> OrderRecord:
    return OrderRecord(
        shop_id=shop, order_sn=sn, order_status=status, timestamp=1, update_time=update_time, event_id=f"{sn}{status}"
    )


def item(shop: str, sn: str, offset: int, tp: tuple[str, int] = TP0, **kw: object) -> Item:
    return Item(tp, offset, rec(shop, sn, **kw))  # type: ignore[arg-type]


def test_batch_flushes_at_max_distinct_orders_without_waiting() -> None:
    batcher = Batcher(max_size=3, timeout_seconds=120)
    assert batcher.add(item("s", "A", 0), now=0) is None
    assert batcher.add(item("s", "B", 1), now=0) is None
    full = batcher.add(item("s", "C", 2), now=0)
    assert full is not None
    assert full.order_sns == ["A", "B", "C"]
    assert batcher.next_deadline() is None  # nothing left open


def test_duplicate_order_does_not_count_twice_but_keeps_every_offset() -> None:
    batcher = Batcher(max_size=2, timeout_seconds=120)
    assert batcher.add(item("s", "A", 0), now=0) is None
    assert batcher.add(item("s", "A", 1), now=0) is None
    full = batcher.add(item("s", "B", 2), now=0)
    assert full is not None
    assert sorted(o for _, o in full.offsets()) == [0, 1, 2]


def test_duplicate_keeps_the_newest_update_time_ties_take_the_later_record() -> None:
    batcher = Batcher(max_size=50, timeout_seconds=1)
    batcher.add(item("s", "A", 0, update_time=20, status="SHIPPED"), now=0)
    batcher.add(item("s", "A", 1, update_time=10, status="READY_TO_SHIP"), now=0)
    batcher.add(item("s", "B", 2, update_time=5, status="READY_TO_SHIP"), now=0)
    batcher.add(item("s", "B", 3, update_time=5, status="CANCELLED"), now=0)
    batcher.add(item("s", "C", 4, update_time=None, status="PROCESSED"), now=0)
    batcher.add(item("s", "C", 5, update_time=7, status="SHIPPED"), now=0)
    batcher.add(item("s", "C", 6, update_time=None, status="UNKNOWN"), now=0)
    (batch,) = batcher.due(now=1)
    assert {sn: r.order_status for sn, r in batch.latest.items()} == {
        "A": "SHIPPED",
        "B": "CANCELLED",
        "C": "SHIPPED",
    }


def test_batch_flushes_after_timeout_from_its_first_record() -> None:
    batcher = Batcher(max_size=50, timeout_seconds=120)
    batcher.add(item("s", "A", 0), now=0)
    batcher.add(item("s", "B", 1), now=100)
    assert batcher.due(now=119.9) == []
    assert batcher.next_deadline() == 120
    (batch,) = batcher.due(now=120)
    assert batch.order_sns == ["A", "B"]
    assert batcher.next_deadline() is None


def test_shops_are_batched_separately() -> None:
    batcher = Batcher(max_size=2, timeout_seconds=10)
    batcher.add(item("s1", "A", 0), now=0)
    batcher.add(item("s2", "A", 1), now=1)
    full = batcher.add(item("s1", "B", 2), now=2)
    assert full is not None
    assert full.shop_id == "s1"
    assert [b.shop_id for b in batcher.due(now=11)] == ["s2"]


def test_drop_partitions_removes_only_revoked_records() -> None:
    batcher = Batcher(max_size=50, timeout_seconds=10)
    batcher.add(item("s1", "A", 0, tp=TP0), now=0)
    batcher.add(item("s1", "B", 0, tp=TP1), now=0)
    batcher.add(item("s2", "C", 1, tp=TP0), now=0)
    assert batcher.drop_partitions({TP0}) == 2
    (batch,) = batcher.due(now=10)
    assert batch.shop_id == "s1"
    assert batch.order_sns == ["B"]
    assert [(i.partition, i.offset) for i in batch.items] == [(TP1, 0)]
    assert batcher.next_deadline() is None
