"""The ingest's remembered key partitions agree with Kafka's default partitioner."""

from __future__ import annotations

import pytest

from service.ingest.partitions import KeyPartitions
from tests.partitioner import partition_for

KEYS = [f"shop-{n}".encode() for n in (0, 1, 7, 42, 727720655, 2**40)] + [b"", b"a", b"ab", b"abc", "shop-é".encode()]


@pytest.mark.parametrize("count", [1, 3, 12, 100])
def test_partition_is_javas_murmur2_of_the_key(count: int) -> None:
    partitions = KeyPartitions()
    for key in KEYS:
        expected = partition_for(key, count)
        assert partitions.of(key, set(range(count))) == expected
        assert partitions.of(key, set(range(count))) == expected  # remembered: the same answer


def test_a_changed_partition_count_moves_the_key_like_kafka_does() -> None:
    partitions = KeyPartitions()
    key = b"shop-727720655"
    assert [partitions.of(key, range(n)) for n in (12, 100)] == [partition_for(key, 12), partition_for(key, 100)]


def test_no_metadata_leaves_the_choice_to_the_producer() -> None:
    assert KeyPartitions().of(b"shop-1", None) is None
    assert KeyPartitions().of(b"shop-1", set()) is None


def test_memory_is_bounded() -> None:
    partitions = KeyPartitions(max_keys=3)
    for n in range(10):
        assert partitions.of(f"shop-{n}".encode(), range(12)) == partition_for(f"shop-{n}".encode(), 12)
    assert len(partitions._hashes) <= 3
