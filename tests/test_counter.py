"""The ingest's lock-free counter exposes what prometheus_client's Counter would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from service.ingest.counter import LockFreeCounter

INCREMENTS = (("forwarded", 1.0), ("skipped", 1.0), ("forwarded", 1.0), ("unavailable", 2.5), ("forwarded", 1.0))


def exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_same_series_as_prometheus_client() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Counter("gateway_x_requests", "doc", ["outcome"], registry=theirs)
    lock_free = LockFreeCounter("gateway_x_requests", "doc", ["outcome"], registry=ours)
    for outcome, amount in INCREMENTS:
        reference.labels(outcome).inc(amount)
        lock_free.labels(outcome).inc(amount)
    assert exposition(ours) == exposition(theirs)
    assert ours.get_sample_value("gateway_x_requests_total", {"outcome": "forwarded"}) == 3.0


def test_wrong_label_count_is_refused() -> None:
    counter = LockFreeCounter("gateway_y_requests", "doc", ["outcome"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels()
