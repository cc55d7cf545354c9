"""`python -m service recover [--once]`: the lost-push and reconciliation sweeps.

Builds the consumer's Store and ShopeeClient, the ingest's transform pipeline and sink
(Kafka, with the Postgres outbox as fallback), runs the sweeps and stops them all in
order. `--once`: one pass of each kind, then exit (a CronJob); otherwise each kind runs
on its interval until SIGTERM/SIGINT, serving /metrics and /healthz on
RECOVER_METRICS_PORT. Exit code 0 unless a sweep failed (stopped early).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time

from prometheus_client import CollectorRegistry

from service.consume.metrics_server import MetricsServer
from service.consume.shopee import ShopeeClient
from service.consume.store import Store
from service.consume.throttle import ShopThrottle
from service.ingest.metrics import IngestMetrics
from service.ingest.server import build_sink
from service.kafka_client import check_connection
from service.logs import setup_logging
from service.pipeline import load_pipeline
from service.recover.api import RecoverAPI
from service.recover.lost import LostPushSweep
from service.recover.metrics import RecoverMetrics
from service.recover.produce import Producer
from service.recover.reconcile import ReconcileSweep
from service.recover.runner import Runner, Sweep
from service.recover.store import RecoverStore
from service.settings import Settings, load_settings

log = logging.getLogger(__name__)

KINDS = ("lost_push", "reconcile")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="one pass of each sweep, then exit (for a CronJob)")
    parser.add_argument("--only", choices=KINDS, help="run only this sweep")
    parser.add_argument("--metrics-port", type=int, help="override RECOVER_METRICS_PORT (0 disables)")


def run(args: argparse.Namespace) -> int:
    overrides = {} if args.metrics_port is None else {"recover_metrics_port": args.metrics_port}
    settings = load_settings(**overrides)
    setup_logging(settings.log_level)
    settings.require("database_url", "shopee_partner_id", "shopee_partner_key", purpose="recover")
    load_pipeline(settings.transform_names)  # a wrong transform name stops start-up here
    asyncio.run(check_connection(settings))  # rejected Kafka credentials: one line, like serve and consume
    kinds = (args.only,) if args.only else KINDS
    return asyncio.run(recover(settings, once=args.once, kinds=kinds))


async def recover(
    settings: Settings,
    *,
    once: bool,
    kinds: tuple[str, ...] = KINDS,
    stop: asyncio.Event | None = None,
    registry: CollectorRegistry | None = None,
) -> int:
    assert settings.database_url is not None
    assert settings.shopee_partner_id is not None and settings.shopee_partner_key is not None
    registry = registry if registry is not None else CollectorRegistry()
    metrics = RecoverMetrics(registry)
    server = MetricsServer(registry, 0 if once else settings.recover_metrics_port)
    sink = build_sink(settings, IngestMetrics())
    await server.start()
    try:
        async with (
            Store(settings.database_url.get_secret_value(), max_connections=settings.recover_concurrency + 4) as store,
            ShopeeClient(
                base_url=settings.shopee_api_base_url,
                partner_id=settings.shopee_partner_id,
                partner_key=settings.shopee_partner_key.get_secret_value().encode(),
                timeout_seconds=settings.shopee_timeout_seconds,
                max_connections=settings.recover_concurrency * 2,
            ) as shopee,
        ):
            await sink.start()
            try:
                api = RecoverAPI(shopee)
                producer = Producer(settings, sink, load_pipeline(settings.transform_names))
                recover_store = RecoverStore(store.pool)
                throttle = ShopThrottle(settings.recover_shop_calls_per_minute, clock=time.monotonic)
                sweeps: dict[str, Sweep] = {
                    "lost_push": LostPushSweep(api, producer, metrics),
                    "reconcile": ReconcileSweep(
                        settings,
                        api=api,
                        shopee=shopee,
                        store=store,
                        recover_store=recover_store,
                        producer=producer,
                        throttle=throttle,
                        metrics=metrics,
                    ),
                }
                runner = Runner(recover_store, metrics, [sweeps[k] for k in kinds])
                if once:
                    results = await runner.once()
                    return 1 if any(r.outcome == "failed" for r in results) else 0
                await _until_stopped(runner, settings, stop)
                return 0
            finally:
                await sink.stop()
    finally:
        await server.stop()


async def _until_stopped(runner: Runner, settings: Settings, stop: asyncio.Event | None) -> None:
    """Sweep on the intervals until SIGTERM/SIGINT (or `stop`); an interrupted sweep is safe
    to abandon: nothing unconfirmed or un-checkpointed is lost, the next one redoes it."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    intervals = {
        "lost_push": settings.recover_lost_push_interval_seconds,
        "reconcile": settings.recover_reconcile_interval_seconds,
    }
    task = asyncio.create_task(runner.forever(intervals, stop))
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for t in (task, waiter):
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t
    log.info("recover stopped")
