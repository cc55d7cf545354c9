"""`python -m service consume`: the consumer process.

Builds the settings, the Postgres store, the Shopee client, the dead-letter producer and
the metrics server, runs the Consumer until SIGTERM/SIGINT, and stops them all in order.

Shutdown is bounded whatever is down (SPEC's operators rely on the pod's grace period):
the Consumer finishes or abandons its batches within SHUTDOWN_GRACE_SECONDS; if cleanup
(commit, leaving the group, producer stop, pool close) then hangs on a dead broker or
database, the run is cancelled at grace + CLEANUP_SECONDS / 2, and a watchdog thread
ends the process at grace + CLEANUP_SECONDS. Uncommitted records are redelivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any

import uvloop
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from service.consume.deadletters import KafkaDeadLetters, dead_letter_producer
from service.consume.metrics import ConsumerMetrics
from service.consume.metrics_server import MetricsServer
from service.consume.runner import Consumer
from service.consume.shopee import ShopeeClient
from service.consume.store import Store
from service.consume.throttle import ShopThrottle
from service.deps import database_address, describe, reaching
from service.errors import DependencyUnavailable, StoreError
from service.kafka_client import check_connection, client_options
from service.logs import Outage, setup_logging
from service.settings import Settings, load_settings
from service.types import Clock, Sleep

log = logging.getLogger(__name__)

CLEANUP_SECONDS = 10.0
STARTUP_RETRY_SECONDS = 2.0
EXIT_STUCK = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics-port", type=int, help="override CONSUMER_METRICS_PORT (0 disables)")


def run(args: argparse.Namespace) -> int:
    overrides = {} if args.metrics_port is None else {"consumer_metrics_port": args.metrics_port}
    settings = load_settings(**overrides)
    setup_logging(settings.log_level)
    settings.require("database_url", "shopee_partner_id", "shopee_partner_key", purpose="the consumer")
    asyncio.run(check_connection(settings))  # rejected credentials: one line, not a crash loop
    # uvloop, as the ingest runs under uvicorn: the consumer's HTTP and Postgres traffic
    # cost measurably less CPU per order on it (docs/benchmarks.md, Consumer)
    uvloop.run(_main(settings))
    return 0


async def _main(settings: Settings) -> None:
    """consume() with signal handling and the last-resort watchdog (process mode only)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if not stop.is_set():
            log.info("stop requested; shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
            _start_watchdog(settings.shutdown_grace_seconds + CLEANUP_SECONDS)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await consume(settings, stop)


def _start_watchdog(seconds: float) -> None:
    def expire() -> None:
        log.error("shutdown did not finish in time; exiting now", extra={"after_seconds": seconds})
        logging.shutdown()
        os._exit(EXIT_STUCK)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


async def consume(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    throttle: ShopThrottle | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Run the consumer until `stop` is set (or SIGTERM/SIGINT when no event is given).

    `clock` and `sleep` are the consumer's time (batch timeouts, throttle, retries); tests
    pass a fake one to hold the per-minute limit through this wiring without waiting minutes.
    """
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    work = asyncio.ensure_future(_consume(settings, stop, throttle, registry, clock, sleep))
    guard = asyncio.ensure_future(_cancel_late(work, stop, settings.shutdown_grace_seconds + CLEANUP_SECONDS / 2))
    try:
        await work
    except asyncio.CancelledError:
        if not guard.done() or guard.cancelled():
            raise  # cancelled from outside, not by the guard
        log.warning("cleanup abandoned after the shutdown bound; uncommitted records will be redelivered")
    finally:
        guard.cancel()


async def _cancel_late(work: asyncio.Future[None], stop: asyncio.Event, bound: float) -> None:
    await stop.wait()
    await asyncio.sleep(bound)
    work.cancel()


async def _consume(
    settings: Settings,
    stop: asyncio.Event,
    throttle: ShopThrottle | None,
    registry: CollectorRegistry | None,
    clock: Clock,
    sleep: Sleep,
) -> None:
    assert settings.database_url is not None
    assert settings.shopee_partner_id is not None
    assert settings.shopee_partner_key is not None
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    server = MetricsServer(registry, settings.consumer_metrics_port)
    await server.start()
    kafka_options = client_options(settings)
    dsn = settings.database_url.get_secret_value()
    try:
        async with contextlib.AsyncExitStack() as stack:
            store = Store(dsn, max_connections=settings.max_concurrency + 2)
            try:
                await store.start()
            except StoreError as exc:
                cause = exc.__cause__ or exc
                raise DependencyUnavailable(
                    f"postgres at {database_address(dsn)} is unreachable ({describe(cause)})"
                ) from exc
            stack.push_async_callback(store.close, CLEANUP_SECONDS / 2)
            shopee = await stack.enter_async_context(
                ShopeeClient(
                    base_url=settings.shopee_api_base_url,
                    partner_id=settings.shopee_partner_id,
                    partner_key=settings.shopee_partner_key.get_secret_value().encode(),
                    optional_fields=settings.optional_fields,
                    timeout_seconds=settings.shopee_timeout_seconds,
                    max_connections=settings.max_concurrency * 2,
                )
            )
            producer = await _started_producer(settings, kafka_options, stop)
            if producer is None:
                return  # stopped while waiting for Kafka
            stack.push_async_callback(_stop_producer, producer)
            consumer = Consumer(
                settings,
                shopee=shopee,
                store=store,
                dead_letters=KafkaDeadLetters(producer, settings.kafka_topic_dead_letter),
                metrics=metrics,
                throttle=throttle,
                clock=clock,
                sleep=sleep,
                kafka_options=kafka_options,
            )
            await consumer.run(stop)
    finally:
        await server.stop()
    log.info("consumer process done")


async def _started_producer(
    settings: Settings, options: dict[str, Any], stop: asyncio.Event
) -> AIOKafkaProducer | None:
    """The dead-letter producer, started. Kafka unreachable at start-up is waited for up to
    KAFKA_STARTUP_WAIT_SECONDS (a broker restarting with the consumer), then exit code 3."""
    deadline = asyncio.get_running_loop().time() + settings.kafka_startup_wait_seconds
    outage = Outage("kafka", log)
    while True:
        producer = dead_letter_producer(options)
        try:
            async with reaching("kafka", settings.kafka_bootstrap_servers):
                await producer.start()
        except DependencyUnavailable as exc:
            await _stop_producer(producer)
            if asyncio.get_running_loop().time() >= deadline:
                raise
            outage.down(str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STARTUP_RETRY_SECONDS)
            if stop.is_set():
                return None
            continue
        outage.up()
        return producer


async def _stop_producer(producer: AIOKafkaProducer) -> None:
    try:
        async with asyncio.timeout(CLEANUP_SECONDS / 2):
            await producer.stop()
    except TimeoutError:
        log.warning("dead-letter producer did not stop in time; abandoned")
