"""`python -m service replay`: re-publish dead-lettered records to the main topic.

Reads the dead-letter topic from the beginning up to its end offsets at start (a
throwaway consumer: no group, nothing committed), keeps the letters that match the
filters, and produces each letter's original record back to the main topic with its
original key (acks=all, idempotent producer). Replaying twice is harmless: the consumer's
upsert is idempotent. Letters without a record (pushes that were unusable at ingest, with
the raw body only) cannot be replayed; they are reported as such.

Prints one JSON line per matching letter and a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from service.errors import ConfigError
from service.kafka_client import check_connection, client_options
from service.logs import setup_logging
from service.records import DeadLetter, OrderRecord
from service.settings import Settings, load_settings

log = logging.getLogger(__name__)

ASSIGNMENT_WAIT_SECONDS = 30.0


def parse_time_ms(value: str) -> int:
    """ISO 8601 (naive = UTC) or unix seconds -> unix milliseconds."""
    text = value.strip()
    try:
        return int(float(text) * 1000)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"not an ISO time or unix seconds: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Filters:
    reasons: frozenset[str] = frozenset()
    shops: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None
    # (partition, offset) of the letters to replay, when the caller picked them (the console)
    positions: frozenset[tuple[int, int]] | None = None

    def match_position(self, partition: int, offset: int) -> bool:
        return self.positions is None or (partition, offset) in self.positions

    def match(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.shops and (letter.shop_id or "") not in self.shops:
            return False
        if self.since_ms is not None and letter.failed_at_ms < self.since_ms:
            return False
        return self.until_ms is None or letter.failed_at_ms <= self.until_ms


@dataclass(slots=True)
class Summary:
    scanned: int = 0
    matched: int = 0
    replayed: int = 0
    would_replay: int = 0
    not_replayable: int = 0
    undecodable: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


async def replay(
    settings: Settings,
    filters: Filters,
    *,
    dry_run: bool = False,
    source_topic: str | None = None,
    target_topic: str | None = None,
    write: Callable[[dict[str, Any]], None] | None = None,
) -> Summary:
    source = source_topic or settings.kafka_topic_dead_letter
    target = target_topic or settings.kafka_topic_marketplace_orders
    emit = write or (lambda _line: None)
    options = client_options(settings)
    summary = Summary()
    # without a group, a subscribed consumer is assigned every partition of the topic
    consumer = AIOKafkaConsumer(source, **options, group_id=None, enable_auto_commit=False)
    producer = None if dry_run else AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
    await consumer.start()
    try:
        if producer is not None:
            await producer.start()
        if source not in await consumer.topics():
            raise ConfigError(f"dead-letter topic {source} does not exist")
        async with asyncio.timeout(ASSIGNMENT_WAIT_SECONDS):
            while not consumer.assignment():  # noqa: ASYNC110 - aiokafka offers no assignment event
                await asyncio.sleep(0.05)
        tps = sorted(consumer.assignment())
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if await consumer.position(tp) < end[tp]}
        sends: list[asyncio.Future[Any]] = []
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in fetched.items():
                for message in messages:
                    if message.offset >= end[tp]:
                        continue
                    summary.scanned += 1
                    future = await _handle(message, filters, summary, emit, producer, target, dry_run)
                    if future is not None:
                        sends.append(future)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        if sends:
            await asyncio.gather(*sends)
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    return summary


async def _handle(
    message: Any,
    filters: Filters,
    summary: Summary,
    emit: Callable[[dict[str, Any]], None],
    producer: AIOKafkaProducer | None,
    target: str,
    dry_run: bool,
) -> asyncio.Future[Any] | None:
    where = {"partition": message.partition, "offset": message.offset}
    if not filters.match_position(message.partition, message.offset):
        return None
    try:
        letter = DeadLetter.decode(message.value or b"")
    except (ValueError, ValidationError):
        summary.undecodable += 1
        emit({"action": "undecodable", **where})
        return None
    if not filters.match(letter):
        return None
    summary.matched += 1
    summary.by_reason[letter.reason] = summary.by_reason.get(letter.reason, 0) + 1
    line = {
        "reason": letter.reason,
        "source": letter.source,
        "shop_id": letter.shop_id,
        "failed_at_ms": letter.failed_at_ms,
    }
    record: OrderRecord | None = None
    if letter.record is not None:
        try:
            record = OrderRecord.from_dict(letter.record)
        except ValueError:
            record = None
    if record is None:
        summary.not_replayable += 1
        emit({"action": "not_replayable", **line, **where})
        return None
    line["order_sn"] = record.order_sn
    if dry_run or producer is None:
        summary.would_replay += 1
        emit({"action": "would_replay", **line, **where})
        return None
    future: asyncio.Future[Any] = await producer.send(target, value=record.encode(), key=record.key.encode())
    summary.replayed += 1
    emit({"action": "replayed", **line, **where})
    return future


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", action="append", default=[], help="only letters with this reason (repeatable)")
    parser.add_argument("--shop", action="append", default=[], help="only letters of this shop id (repeatable)")
    parser.add_argument("--since", help="only letters that failed at or after this time (ISO 8601 or unix seconds)")
    parser.add_argument("--until", help="only letters that failed at or before this time (ISO 8601 or unix seconds)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be replayed, produce nothing")
    parser.add_argument("--from-topic", help="dead-letter topic (default: KAFKA_TOPIC_DEAD_LETTER)")
    parser.add_argument("--to-topic", help="target topic (default: KAFKA_TOPIC_MARKETPLACE_ORDERS)")


def _write_line(line: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(line).decode() + "\n")


def build_filters(reasons: Sequence[str], shops: Sequence[str], since: str | None, until: str | None) -> Filters:
    return Filters(
        reasons=frozenset(reasons),
        shops=frozenset(shops),
        since_ms=parse_time_ms(since) if since else None,
        until_ms=parse_time_ms(until) if until else None,
    )


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    setup_logging(settings.log_level)
    filters = build_filters(args.reason, args.shop, args.since, args.until)
    asyncio.run(check_connection(settings))
    summary = asyncio.run(
        replay(
            settings,
            filters,
            dry_run=args.dry_run,
            source_topic=args.from_topic,
            target_topic=args.to_topic,
            write=_write_line,
        )
    )
    _write_line({"summary": asdict(summary), "dry_run": args.dry_run})
    sys.stdout.flush()
    return 0
