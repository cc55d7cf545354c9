"""Prometheus metrics of the ingest service, on a registry of the app's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from service.ingest.counter import LockFreeCounter
from service.ingest.histogram import LockFreeHistogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = LockFreeCounter(
            "gateway_ingest_requests",
            "Push requests by outcome (forwarded, skipped, dead_lettered, unauthorized, too_large, "
            "timeout, unavailable)",
            ["outcome"],
            registry=r,
        )
        self.handling_seconds = LockFreeHistogram(
            "gateway_ingest_handling_seconds",
            "Time from request start to answer",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.produce_seconds = LockFreeHistogram(
            "gateway_ingest_produce_seconds",
            "Time to make one record durable, by sink (kafka, outbox)",
            ["sink"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.skips = Counter(
            "gateway_ingest_skips", "Pushes deliberately not forwarded, by reason", ["reason"], registry=r
        )
        self.unhandled_codes = Counter(
            "gateway_ingest_unhandled_codes",
            "Signed pushes with a push code this pipeline does not handle",
            ["code"],
            registry=r,
        )
        self.signature_failures = Counter(
            "gateway_ingest_signature_failures", "Pushes rejected for a missing or wrong signature", registry=r
        )
        self.dead_letters = Counter(
            "gateway_ingest_dead_letters",
            "Signed but unusable pushes kept in the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.outbox_depth = Gauge("gateway_outbox_depth", "Rows waiting in the fallback outbox", registry=r)
        self.outbox_oldest_age_seconds = Gauge(
            "gateway_outbox_oldest_age_seconds", "Age of the oldest row in the fallback outbox", registry=r
        )
        self.outbox_relayed = Counter("gateway_outbox_relayed", "Outbox rows relayed to Kafka", registry=r)
        self.dependency_up = Gauge(
            "gateway_dependency_up",
            "1 while the dependency (kafka, outbox_database) answers, 0 while it is failing",
            ["dependency"],
            registry=r,
        )
