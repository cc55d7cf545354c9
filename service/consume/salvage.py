"""Getting past record batches the consumer cannot unpack (a codec this process lacks, corruption).

aiokafka raises such an error out of `getmany` for the whole fetch: the records of other
partitions already unpacked in that call are dropped although their positions advanced,
and the partition stays on the bad batch, so every later fetch fails again. `salvage`
recovers:

1. every assigned partition goes back to the next offset the consumer has not taken
   (`next_offsets`; the committed offset for partitions it has taken nothing from);
2. partitions are fetched one at a time; the good ones' records are handed back;
3. in the partition that fails, records are fetched one by one from its start until the
   one that cannot be unpacked: it is reported (the caller dead-letters it) and the
   partition moves one offset past it.

Each call hands back records or an undecodable offset, so repeated calls always progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CorruptRecordException, UnsupportedCodecError

from service.types import Partition

#: errors of unpacking a fetched batch (decompression, CRC), as opposed to network errors
UNPACK_ERRORS = (UnsupportedCodecError, CorruptRecordException)

FETCH_TIMEOUT_MS = 2000


@dataclass
class Salvaged:
    records: dict[TopicPartition, list[Any]] = field(default_factory=dict)
    #: (partition, offset, why): records that cannot be unpacked, now skipped
    undecodable: list[tuple[TopicPartition, int, str]] = field(default_factory=list)

    def in_offset_order(self) -> list[tuple[Partition, int, Any, str]]:
        """(partition, offset, message or None, why) for every salvaged offset, in the order
        the offset tracker needs; `why` names the partition and offset of an undecodable one."""
        found: list[tuple[Partition, int, Any, str]] = [
            ((tp.topic, tp.partition), m.offset, m, "") for tp, ms in self.records.items() for m in ms
        ]
        found += [
            ((tp.topic, tp.partition), offset, None, f"{why} (partition {tp.partition}, offset {offset})")
            for tp, offset, why in self.undecodable
        ]
        return sorted(found, key=lambda f: (f[0], f[1]))


async def salvage(kafka: AIOKafkaConsumer, next_offsets: dict[Partition, int], *, max_records: int) -> Salvaged:
    assigned = sorted(kafka.assignment())
    starts = {tp: await _rewind(kafka, tp, next_offsets.get((tp.topic, tp.partition))) for tp in assigned}
    ends = await kafka.end_offsets(assigned) if assigned else {}
    out = Salvaged()
    kafka.pause(*assigned)
    try:
        for tp in (tp for tp in assigned if starts[tp] < ends[tp]):
            kafka.resume(tp)
            try:
                await _probe(kafka, tp, max_records, out)
            finally:
                kafka.pause(tp)
            if out.undecodable:
                break  # one at a time: the next fetch finds any other
    finally:
        kafka.resume(*assigned)
    return out


async def _rewind(kafka: AIOKafkaConsumer, tp: TopicPartition, offset: int | None) -> int:
    if offset is None:
        offset = await kafka.committed(tp)
    if offset is None:
        await kafka.seek_to_beginning(tp)
        position: int = await kafka.position(tp)
        return position
    kafka.seek(tp, offset)
    return offset


async def _probe(kafka: AIOKafkaConsumer, tp: TopicPartition, max_records: int, out: Salvaged) -> None:
    try:
        got = await kafka.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS, max_records=max_records)
    except UNPACK_ERRORS:
        pass  # the failing partition's position has not moved: walk it from there
    else:
        if got.get(tp):
            out.records[tp] = got[tp]
        return
    taken: list[Any] = []
    for _ in range(max_records):  # one record per call: the failing call names the offset
        try:
            got = await kafka.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS, max_records=1)
        except UNPACK_ERRORS as exc:
            offset: int = await kafka.position(tp)
            out.undecodable.append((tp, offset, f"{type(exc).__name__}: {exc}"))
            kafka.seek(tp, offset + 1)
            continue
        if not got.get(tp):
            break
        taken += got[tp]
    if taken:
        out.records[tp] = taken
