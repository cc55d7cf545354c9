"""The consumer's /metrics and /healthz, served from its event loop."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client import CollectorRegistry

from service.consume.metrics import ConsumerMetrics
from service.consume.metrics_server import MetricsServer
from service.logs import setup_logging
from tests.conftest import free_port


async def test_metrics_and_healthz_are_served_and_unknown_paths_are_404() -> None:
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    metrics.orders_written.inc(3)
    port = free_port()
    server = MetricsServer(registry, port, addr="127.0.0.1")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert "consumer_orders_written_total 3.0" in (await client.get("/metrics")).text
            health = await client.get("/healthz")
            assert health.status_code == 200 and health.text == "ok\n"
            assert (await client.get("/nope")).status_code == 404
            assert (await client.post("/metrics")).status_code == 405
    finally:
        await server.stop()


async def test_healthz_does_not_answer_while_the_event_loop_is_stuck() -> None:
    port = free_port()
    server = MetricsServer(CollectorRegistry(), port, addr="127.0.0.1")
    await server.start()
    try:

        def probe() -> int | str:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code
            except httpx.TimeoutException:
                return "timeout"

        # Block the loop until the probe has its answer: the probe's whole life falls inside
        # the stuck stretch, however late its thread starts.
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(probe).result(timeout=60) == "timeout"
        assert await asyncio.get_running_loop().run_in_executor(None, probe) == 200
    finally:
        await server.stop()


def test_http_client_request_logs_are_silenced(restore_logging: None) -> None:
    setup_logging("INFO")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("service").isEnabledFor(logging.INFO)
