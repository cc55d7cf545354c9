"""The dead-letter topic as the console sees it: a small in-memory index, kept up to date.

A throwaway consumer (no group, nothing committed) reads the topic once from the
beginning and then only what was appended since, so a page with 100,000 letters costs a
scan of the index, not of the topic. Each entry keeps what the lists filter and group on;
the detail view fetches the one message by partition and offset.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from service.records import DeadLetter, OrderRecord

UNDECODABLE = "undecodable"


@dataclass(frozen=True, slots=True)
class Entry:
    partition: int
    offset: int
    reason: str
    source: str
    shop_id: str | None
    failed_at_ms: int
    order_sn: str | None
    replayable: bool


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """What /dead-letters filters on; every field comes from the URL."""

    reason: str | None = None
    shop_id: str | None = None
    source: str | None = None
    order_sn: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def match(self, e: Entry) -> bool:
        return (
            (self.reason is None or e.reason == self.reason)
            and (self.shop_id is None or e.shop_id == self.shop_id)
            and (self.source is None or e.source == self.source)
            and (self.order_sn is None or e.order_sn == self.order_sn)
            and (self.since_ms is None or e.failed_at_ms >= self.since_ms)
            and (self.until_ms is None or e.failed_at_ms <= self.until_ms)
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k in self.__slots__ if (v := getattr(self, k)) is not None}


def _raw_order_sn(letter: DeadLetter) -> str | None:
    raw = letter.raw_body()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    value = data.get("ordersn") if isinstance(data, dict) else body.get("order_sn")
    return value if isinstance(value, str) else None


def entry_of(partition: int, offset: int, value: bytes | None) -> Entry:
    try:
        letter = DeadLetter.decode(value or b"")
    except (ValueError, ValidationError):
        return Entry(partition, offset, UNDECODABLE, "?", None, 0, None, False)
    try:
        record = OrderRecord.from_dict(letter.record) if letter.record is not None else None
    except ValueError:
        record = None
    order_sn = record.order_sn if record is not None else _raw_order_sn(letter)
    return Entry(
        partition,
        offset,
        letter.reason,
        letter.source,
        letter.shop_id,
        letter.failed_at_ms,
        order_sn,
        record is not None,
    )


def decoded_detail(value: bytes | None) -> dict[str, Any]:
    """Everything the detail page shows of one message; strings only, the template escapes them."""
    try:
        letter = DeadLetter.decode(value or b"")
    except (ValueError, ValidationError):
        return {"undecodable": (value or b"").decode(errors="replace")}
    raw = None
    if letter.raw_body_b64 is not None:
        try:
            raw = base64.b64decode(letter.raw_body_b64).decode(errors="replace")
        except ValueError:
            raw = letter.raw_body_b64
    record = orjson.dumps(letter.record, option=orjson.OPT_INDENT_2).decode() if letter.record else None
    return {"letter": letter, "record_json": record, "raw_body": raw}


class DeadLetterIndex:
    def __init__(
        self, consumer_options: dict[str, Any], topic: str, partitions: Callable[[str], Awaitable[list[int]]]
    ) -> None:
        self.topic = topic
        self._partitions = partitions
        self._options = consumer_options
        self._consumer: AIOKafkaConsumer | None = None
        self._entries: list[Entry] = []
        self._next: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**self._options, group_id=None, enable_auto_commit=False)
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def refresh(self) -> list[Entry]:
        """Read what was appended since the last refresh; return all entries.

        The index keeps its own next offset per partition and asks the broker only for the
        end offsets: a refresh with nothing new is two metadata round trips, not a wait on
        the consumer's fetcher.
        """
        async with self._lock:
            consumer = self._consumer
            assert consumer is not None, "DeadLetterIndex.start() first"
            tps = [TopicPartition(self.topic, p) for p in await self._partitions(self.topic)]
            if not tps:
                return self._entries
            new = [tp for tp in tps if tp not in self._next]
            if new:
                self._next.update(await consumer.beginning_offsets(new))
            if set(tps) != consumer.assignment():
                consumer.assign(tps)
                consumer.pause(*tps)
            end = await consumer.end_offsets(tps)
            remaining = {tp for tp in tps if self._next[tp] < end[tp]}
            for tp in remaining:
                consumer.seek(tp, self._next[tp])
            consumer.resume(*remaining)
            try:
                await self._read(consumer, remaining, end)
            finally:
                # paused between refreshes: an idle fetcher's long polls would queue the next
                # refresh's offset requests behind them on the same broker connection
                consumer.pause(*tps)
            return self._entries

    async def _read(
        self, consumer: AIOKafkaConsumer, remaining: set[TopicPartition], end: dict[TopicPartition, int]
    ) -> None:
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, messages in fetched.items():
                wanted = [m for m in messages if self._next[tp] <= m.offset < end[tp]]
                self._entries.extend(entry_of(m.partition, m.offset, m.value) for m in wanted)
                if wanted:
                    self._next[tp] = wanted[-1].offset + 1
            for tp in list(remaining):
                if tp not in fetched:  # e.g. offsets without records (compaction): trust the fetcher
                    self._next[tp] = max(self._next[tp], await consumer.position(tp))
            remaining = {tp for tp in remaining if self._next[tp] < end[tp]}

    async def fetch(self, partition: int, offset: int) -> bytes | None:
        """The raw value of one message (a consumer of its own: the index's keeps its positions)."""
        consumer = AIOKafkaConsumer(**self._options, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            if offset < 0 or offset >= end:
                return None
            consumer.seek(tp, offset)
            message = await asyncio.wait_for(consumer.getone(tp), timeout=10)
            return message.value if message.offset == offset else None
        finally:
            await consumer.stop()


@dataclass(slots=True)
class ReasonGroup:
    """One reason's letters, like a Hookdeck "issue"."""

    reason: str
    count: int = 0
    replayable: int = 0
    replayed: int = 0
    shops: set[str | None] | None = None
    first_ms: int = 0
    last_ms: int = 0


def group_by_reason(entries: Iterable[Entry], replayed: set[tuple[int, int]]) -> list[ReasonGroup]:
    groups: dict[str, ReasonGroup] = {}
    for e in entries:
        g = groups.get(e.reason)
        if g is None:
            g = groups[e.reason] = ReasonGroup(e.reason, shops=set(), first_ms=e.failed_at_ms, last_ms=e.failed_at_ms)
        g.count += 1
        g.replayable += e.replayable
        g.replayed += (e.partition, e.offset) in replayed
        assert g.shops is not None
        g.shops.add(e.shop_id)
        g.first_ms = min(g.first_ms, e.failed_at_ms)
        g.last_ms = max(g.last_ms, e.failed_at_ms)
    return sorted(groups.values(), key=lambda g: (-g.last_ms, g.reason))


def per_hour(entries: Iterable[Entry], now_ms: int, hours: int = 24) -> list[int]:
    """Letters per hour over the last `hours` hours, oldest first."""
    counts = [0] * hours
    for e in entries:
        age_hours = (now_ms - e.failed_at_ms) // 3_600_000
        if 0 <= age_hours < hours:
            counts[hours - 1 - age_hours] += 1
    return counts
