"""Kafka's default partition of a record key, remembered per key.

aiokafka hashes every keyed record with a pure-Python murmur2, per push, for keys that
repeat (one per shop). The ingest passes the partition explicitly instead, computed with
the same function (Java's `toPositive(murmur2(key)) % partitions`, the partition every
Kafka client picks) and remembered, so a push costs one dict lookup.
"""

from __future__ import annotations

from collections.abc import Collection

from aiokafka.partitioner import murmur2

MAX_KEYS = 100_000  # about 10 MB at most; forgotten all at once when full


class KeyPartitions:
    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._hashes: dict[bytes, int] = {}
        self._max_keys = max_keys

    def of(self, key: bytes, partitions: Collection[int] | None) -> int | None:
        """The partition of `key` among `partitions` (ids 0..n-1); None leaves it to the producer."""
        if not partitions:
            return None  # no metadata yet: the producer waits for it and partitions itself
        positive = self._hashes.get(key)
        if positive is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()
            positive = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return positive % len(partitions)
