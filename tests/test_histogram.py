"""The ingest's lock-free histogram exposes what prometheus_client's Histogram would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from service.ingest.histogram import LockFreeHistogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
VALUES = (0.0, 0.0005, 0.001, 0.0011, 0.02, 0.5, 1.0, 3.0, 4.99, 7.5)  # on, between and past the bounds


def exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


@pytest.mark.parametrize("labels", [(), ("sink",)])
def test_same_series_as_prometheus_client(labels: tuple[str, ...]) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("gateway_x_seconds", "doc", labels, buckets=BUCKETS, registry=theirs)
    lock_free = LockFreeHistogram("gateway_x_seconds", "doc", labels, buckets=BUCKETS, registry=ours)
    for value in VALUES:
        (reference.labels("kafka") if labels else reference).observe(value)
        (lock_free.labels("kafka") if labels else lock_free).observe(value)
    assert exposition(ours) == exposition(theirs)
    assert 'gateway_x_seconds_bucket{le="0.001"' in "\n".join(exposition(ours))  # the bound itself counts


def test_wrong_label_count_is_refused() -> None:
    histogram = LockFreeHistogram("gateway_y_seconds", "doc", ["sink"], buckets=BUCKETS, registry=CollectorRegistry())
    with pytest.raises(ValueError, match="takes labels"):
        histogram.labels()
