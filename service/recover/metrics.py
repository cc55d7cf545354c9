"""Recovery's Prometheus metrics, registered on a registry the caller passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RecoverMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.lost_pushes = Counter(
            "recover_lost_pushes_total",
            "Lost pushes by stage: fetched, produced, skipped (filtered), dead_lettered, confirmed",
            ["stage"],
            registry=registry,
        )
        self.orders_checked = Counter(
            "recover_orders_checked_total", "Orders listed by get_order_list and compared", registry=registry
        )
        self.orders_produced = Counter(
            "recover_orders_produced_total",
            "Records produced by reconciliation, by reason (missing, stale)",
            ["reason"],
            registry=registry,
        )
        self.shopee_errors = Counter(
            "recover_shopee_errors_total",
            "Failed Shopee calls, by call and reason",
            ["call", "reason"],
            registry=registry,
        )
        self.shop_failures = Counter(
            "recover_shop_failures_total",
            "Shops a reconciliation sweep could not finish, by reason (refresh_token_rejected: re-authorise)",
            ["reason"],
            registry=registry,
        )
        self.shops_blocked = Gauge(
            "recover_shops_blocked",
            "Active shops skipped because Shopee refused their refresh token for good",
            registry=registry,
        )
        self.sweeps = Counter(
            "recover_sweeps_total",
            "Sweeps by kind and outcome (ok, errors, failed, locked)",
            ["kind", "outcome"],
            registry=registry,
        )
        self.last_success = Gauge(
            "recover_last_success_timestamp_seconds",
            "Unix time the last sweep of each kind finished without errors",
            ["kind"],
            registry=registry,
        )
