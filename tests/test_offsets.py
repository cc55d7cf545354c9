from __future__ import annotations

from service.consume.offsets import OffsetTracker

TP = ("orders", 0)
TP2 = ("orders", 1)


def test_commit_stops_at_the_lowest_offset_not_yet_durable() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.track(TP, offset)
    tracker.done([(TP, 0), (TP, 2), (TP, 3)])
    assert tracker.committable() == {TP: 1}
    tracker.committed({TP: 1})
    assert tracker.committable() == {}
    tracker.done([(TP, 1)])
    assert tracker.committable() == {TP: 4}
    tracker.done([(TP, 4)])
    assert tracker.committable() == {TP: 5}


def test_nothing_to_commit_before_anything_is_durable() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 10)
    assert tracker.committable() == {TP: 10}  # the position already reached; commits nothing new
    tracker.committed({TP: 10})
    tracker.track(TP, 11)
    assert tracker.committable() == {}


def test_partitions_are_independent_and_gaps_are_fine() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 3)
    tracker.track(TP, 7)  # offsets 4..6 were compacted away
    tracker.track(TP2, 0)
    tracker.done([(TP, 3), (TP, 7)])
    assert tracker.committable() == {TP: 8, TP2: 0}
    assert tracker.pending == 1


def test_refetched_offsets_are_tracked_once() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 0)
    tracker.track(TP, 1)
    tracker.track(TP, 1)
    tracker.done([(TP, 0), (TP, 1)])
    assert tracker.committable() == {TP: 2}
    assert tracker.pending == 0


def test_forget_drops_revoked_partitions() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 0)
    tracker.track(TP2, 0)
    tracker.forget([TP])
    assert tracker.committable() == {TP2: 0}
    tracker.done([(TP, 0)])  # late completion of a revoked partition is ignored
    assert tracker.pending == 1
