"""The consumer loop with a fake Kafka consumer, Shopee, store and dead-letter topic handed in.

What is committed, when, and how batches are started; the real broker's side is in
test_consume_kafka.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from service.consume.metrics import ConsumerMetrics
from service.consume.runner import Consumer
from service.consume.shopee import OrderDetails
from service.errors import SinkUnavailable
from service.records import OrderRecord
from service.settings import Settings
from service.types import TokenPair
from tests.test_consume_worker import FakeDeadLetters, FakeStore, creds

TP0, TP1 = TopicPartition("orders", 0), TopicPartition("orders", 1)


@dataclass
class Message:
    offset: int
    key: bytes | None
    value: bytes


class FakeKafka:
    """An AIOKafkaConsumer as the loop uses it; the test assigns, revokes and delivers."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.assigned: set[TopicPartition] = set()
        self._queued: list[tuple[TopicPartition, Message]] = []
        self._arrived = asyncio.Event()
        self._listener: Any = None

    def __call__(self, **options: Any) -> FakeKafka:  # the runner's kafka_factory
        return self

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self._listener = listener

    def subscribed(self) -> bool:
        return self._listener is not None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    async def assign(self, *partitions: TopicPartition) -> None:
        self.assigned |= set(partitions)
        await self._listener.on_partitions_assigned(set(partitions))

    async def revoke(self, *partitions: TopicPartition) -> None:
        self.assigned -= set(partitions)
        await self._listener.on_partitions_revoked(set(partitions))

    def deliver(self, tp: TopicPartition, offset: int, value: bytes, key: bytes | None = None) -> None:
        self._queued.append((tp, Message(offset, key, value)))
        self._arrived.set()

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Message]]:
        if not self._queued:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_ms / 1000):
                    await self._arrived.wait()
        fetched: dict[TopicPartition, list[Message]] = {}
        for tp, message in self._queued:
            fetched.setdefault(tp, []).append(message)
        self._queued.clear()
        return fetched

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def positions(self, tp: TopicPartition) -> list[int]:
        return [c[tp] for c in self.commits if tp in c]


class GatedShopee:
    """get_order_detail waits while its shop is held; records calls and calls in flight."""

    def __init__(self, *held: str) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.max_in_flight: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._gates = {shop: asyncio.Event() for shop in held}

    def release(self, shop: str) -> None:
        self._gates[shop].set()

    async def get_order_detail(self, shop_id: str, access_token: str, order_sns: Sequence[str]) -> OrderDetails:
        self.calls.append((shop_id, list(order_sns)))
        self._in_flight[shop_id] += 1
        self.max_in_flight[shop_id] = max(self.max_in_flight[shop_id], self._in_flight[shop_id])
        try:
            if shop_id in self._gates:
                await self._gates[shop_id].wait()
        finally:
            self._in_flight[shop_id] -= 1
        return OrderDetails([{"order_sn": sn, "order_status": "SHIPPED", "update_time": 9} for sn in order_sns])

    async def refresh_access_token(self, shop_id: str, refresh_token: str) -> TokenPair:
        raise AssertionError("not expected: the tokens are valid")


def value(shop: str, sn: str) -> bytes:
    return OrderRecord(shop_id=shop, order_sn=sn, timestamp=1, update_time=1, event_id=f"{shop}-{sn}").encode()


@contextlib.asynccontextmanager
async def running(
    kafka: FakeKafka, shopee: GatedShopee, store: FakeStore, dead: FakeDeadLetters | None = None
) -> AsyncIterator[None]:
    settings = Settings(
        batch_max_size=1, shutdown_grace_seconds=0.2, retry_base_seconds=0.01, retry_max_seconds=0.05
    )  # one record per batch: each record's batch starts as soon as it is fetched
    consumer = Consumer(
        settings,
        shopee=shopee,
        store=store,
        dead_letters=dead or FakeDeadLetters(),
        metrics=ConsumerMetrics(CollectorRegistry()),
        kafka_options={},
        kafka_factory=kafka,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await until(kafka.subscribed)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Wait until `condition` holds (a generous bound, not a latency check)."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def test_offsets_are_committed_only_up_to_the_first_record_not_yet_durable() -> None:
    kafka, shopee, store = FakeKafka(), GatedShopee("1"), FakeStore(creds())
    async with running(kafka, shopee, store):
        await kafka.assign(TP0)
        kafka.deliver(TP0, 0, value("1", "held"))
        kafka.deliver(TP0, 1, value("2", "done"))
        await until(lambda: ("2", "done") in store.rows and kafka.positions(TP0) != [])
        assert set(kafka.positions(TP0)) == {0}  # offset 1 is durable, offset 0 is not
        shopee.release("1")
        await until(lambda: kafka.positions(TP0)[-1] == 2)
    assert set(store.rows) == {("1", "held"), ("2", "done")}


async def test_a_shop_has_one_batch_in_flight_and_its_batches_run_in_offset_order() -> None:
    kafka, shopee, store = FakeKafka(), GatedShopee("1"), FakeStore(creds())
    async with running(kafka, shopee, store):
        await kafka.assign(TP0)
        for offset, sn in enumerate(["a", "b", "c"]):
            kafka.deliver(TP0, offset, value("1", sn))
        kafka.deliver(TP0, 3, value("2", "other"))
        await until(lambda: ("2", "other") in store.rows)  # everything fetched, scheduled once at least
        assert [sns for shop, sns in shopee.calls if shop == "1"] == [["a"]]
        shopee.release("1")
        await until(lambda: kafka.positions(TP0)[-1:] == [4])
    assert [sns for shop, sns in shopee.calls if shop == "1"] == [["a"], ["b"], ["c"]]
    assert shopee.max_in_flight["1"] == 1


async def test_a_revoked_partition_commits_its_durable_offsets_before_it_goes() -> None:
    kafka, shopee, store = FakeKafka(), GatedShopee("2"), FakeStore(creds())
    async with running(kafka, shopee, store):
        await kafka.assign(TP0, TP1)
        for offset, shop in enumerate(["1", "1", "1", "2", "3"]):
            kafka.deliver(TP0, offset, value(shop, f"sn{offset}"))
        await until(lambda: len(store.rows) == 4)  # all but shop 2's, which Shopee holds
        await kafka.revoke(TP0)  # shop 2's batch is abandoned after the grace period
        assert kafka.positions(TP0)[-1] == 3  # up to, not past, the record that is not durable
        revoked_commits = len(kafka.positions(TP0))
        kafka.deliver(TP1, 0, value("4", "kept"))
        await until(lambda: kafka.positions(TP1)[-1:] == [1])
        shopee.release("2")
    assert len(kafka.positions(TP0)) == revoked_commits  # nothing more for a partition no longer ours
    assert ("2", "sn3") not in store.rows


async def test_an_undecodable_record_is_dead_lettered_with_retries_and_then_committed() -> None:
    kafka, shopee, store = FakeKafka(), GatedShopee(), FakeStore(creds())
    dead = FakeDeadLetters(SinkUnavailable("dead-letter topic down"), SinkUnavailable("still down"))
    async with running(kafka, shopee, store, dead):
        await kafka.assign(TP0)
        kafka.deliver(TP0, 0, b"\x00 not a record", key=b"shop-7")
        kafka.deliver(TP0, 1, value("7", "fine"))
        await until(lambda: kafka.positions(TP0)[-1:] == [2])
    (letter,) = dead.letters
    assert (letter.reason, letter.shop_id, letter.raw_body()) == ("undecodable_record", "7", b"\x00 not a record")
    assert dead.failures == []  # both failures were retried
