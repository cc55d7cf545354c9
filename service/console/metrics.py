"""Metrics only the console can see, refreshed when Prometheus scrapes `GET /metrics`.

The ingest and the consumer export what happens inside them; what lives in Kafka and
Postgres between them (the consumer group's lag, the dead letters in the topic, when a
recover sweep last finished cleanly) is read here, where the console already reads it.
"""

from __future__ import annotations

from collections import Counter

import asyncpg
from prometheus_client import CollectorRegistry, Gauge

from service.console import queries
from service.console.deadletters import Entry
from service.console.health import Lag


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.lag = Gauge(
            "gateway_consumer_group_lag",
            "Records on the main topic not yet committed by the consumer group, per partition",
            ["partition"],
            registry=r,
        )
        self.lag_up = Gauge("gateway_consumer_group_lag_up", "1 when the last lag reading succeeded", registry=r)
        self.dead_letters = Gauge(
            "gateway_dead_letters_in_topic", "Letters in the dead-letter topic, by reason", ["reason"], registry=r
        )
        self.recover_last_success = Gauge(
            "gateway_recover_last_success_timestamp_seconds",
            "Unix time the last recover sweep of each kind finished without errors (from recover_runs)",
            ["kind"],
            registry=r,
        )

    def update(self, lag: Lag, entries: list[Entry]) -> None:
        self.lag_up.set(0 if lag.error else 1)
        if not lag.error:
            self.lag.clear()
            for partition, value in lag.per_partition.items():
                self.lag.labels(str(partition)).set(value)
        self.dead_letters.clear()
        for reason, count in Counter(e.reason for e in entries).items():
            self.dead_letters.labels(reason).set(count)

    async def update_recover(self, pool: asyncpg.Pool) -> None:
        if not await queries.table_exists(pool, "recover_runs"):
            return
        rows = await pool.fetch(
            "SELECT kind, EXTRACT(EPOCH FROM MAX(finished_at)) AS at FROM recover_runs "
            "WHERE finished_at IS NOT NULL AND errors = 0 GROUP BY kind"
        )
        for row in rows:
            self.recover_last_success.labels(row["kind"]).set(float(row["at"]))
