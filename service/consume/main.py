"""`python -m service consume`: the consumer process.

Builds the settings, the Postgres store, the Shopee client, the dead-letter producer and
the metrics server, runs the Consumer until SIGTERM/SIGINT, and stops them all in order.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time

from prometheus_client import CollectorRegistry

from service.consume.deadletters import KafkaDeadLetters, dead_letter_producer
from service.consume.metrics import ConsumerMetrics
from service.consume.metrics_server import MetricsServer
from service.consume.runner import Consumer
from service.consume.shopee import ShopeeClient
from service.consume.store import Store
from service.consume.throttle import ShopThrottle
from service.kafka_client import check_connection, client_options
from service.logs import setup_logging
from service.settings import Settings, load_settings
from service.types import Clock, Sleep

log = logging.getLogger(__name__)

CLEANUP_SECONDS = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics-port", type=int, help="override CONSUMER_METRICS_PORT (0 disables)")


def run(args: argparse.Namespace) -> int:
    overrides = {} if args.metrics_port is None else {"consumer_metrics_port": args.metrics_port}
    settings = load_settings(**overrides)
    setup_logging(settings.log_level)
    settings.require("database_url", "shopee_partner_id", "shopee_partner_key", purpose="the consumer")
    asyncio.run(check_connection(settings))  # rejected credentials: one line, not a crash loop
    asyncio.run(consume(settings))
    return 0


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
    assert settings.database_url is not None
    assert settings.shopee_partner_id is not None
    assert settings.shopee_partner_key is not None
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    server = MetricsServer(registry, settings.consumer_metrics_port)
    await server.start()
    kafka_options = client_options(settings)
    producer = dead_letter_producer(kafka_options)
    try:
        async with (
            Store(settings.database_url.get_secret_value(), max_connections=settings.max_concurrency + 2) as store,
            ShopeeClient(
                base_url=settings.shopee_api_base_url,
                partner_id=settings.shopee_partner_id,
                partner_key=settings.shopee_partner_key.get_secret_value().encode(),
                optional_fields=settings.optional_fields,
                timeout_seconds=settings.shopee_timeout_seconds,
                max_connections=settings.max_concurrency * 2,
            ) as shopee,
        ):
            await producer.start()
            try:
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
                async with asyncio.timeout(CLEANUP_SECONDS):
                    await producer.stop()
    finally:
        await server.stop()
        log.info("consumer process done")
