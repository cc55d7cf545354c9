"""The consumer's Prometheus metrics, registered on a registry the caller passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LONG = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 180, 300, 600, 1800, 3600)


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.batch_size = Histogram(
            "consumer_batch_size_orders",
            "Distinct orders per batch handed to a worker",
            buckets=(1, 2, 5, 10, 20, 30, 40, 50),
            registry=registry,
        )
        self.batch_age = Histogram(
            "consumer_batch_age_seconds", "Age of a batch's first record at flush", buckets=_LONG, registry=registry
        )
        self.batches = Counter("consumer_batches_total", "Batches finished, by outcome", ["outcome"], registry=registry)
        self.batches_in_flight = Gauge("consumer_batches_in_flight", "Batches being processed", registry=registry)
        self.throttle_wait = Histogram(
            "consumer_throttle_wait_seconds",
            "Time a Shopee call waited for its shop's rate limit",
            buckets=_LONG,
            registry=registry,
        )
        self.shopee_calls = Histogram(
            "consumer_shopee_call_seconds",
            "Shopee API call latency, by endpoint and outcome",
            ["endpoint", "outcome"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.token_refreshes = Counter(
            "consumer_token_refreshes_total",
            "Token rotations: refreshed here, reused another replica's, or failed",
            ["outcome"],
            registry=registry,
        )
        self.upsert_latency = Histogram(
            "consumer_upsert_seconds", "Batch upsert latency", buckets=_LATENCY, registry=registry
        )
        self.orders_written = Counter("consumer_orders_written_total", "Order rows upserted", registry=registry)
        self.dead_letters = Counter(
            "consumer_dead_letters_total", "Records dead-lettered, by reason", ["reason"], registry=registry
        )
        self.end_to_end = Histogram(
            "consumer_end_to_end_seconds",
            "From the push's receipt to its row being written",
            buckets=_LONG,
            registry=registry,
        )
        self.records_pending = Gauge(
            "consumer_records_pending", "Records fetched whose outcome is not durable yet", registry=registry
        )
        self.fetch_paused = Gauge(
            "consumer_fetch_paused", "1 while fetching is paused for backpressure", registry=registry
        )
        self.commits = Counter("consumer_commits_total", "Offset commits, by outcome", ["outcome"], registry=registry)
        self.retries = Counter("consumer_retries_total", "Retried steps, by reason", ["reason"], registry=registry)
