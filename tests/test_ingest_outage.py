"""Issue 11, items 2 and 7: the ingest in an outage, as a real `serve` process.

- It binds its port at once with Kafka unreachable, reports unready with the reason, and
  becomes ready when Kafka comes, without a restart.
- The outbox gauges follow the table while Kafka is down (operators alert on them).
- An unreachable outbox database is logged, named in /readyz and shown in a metric.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.migrate import migrate
from tests.commands import Running, command_env
from tests.conftest import PrivateBroker, free_port
from tests.pushes import real_push, signed_headers

pytestmark = pytest.mark.integration

WAIT_SECONDS = 60.0


def serve(bootstrap: str, port: int, **settings: str) -> Running:
    env = command_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        KAFKA_TOPIC_MARKETPLACE_ORDERS="orders",
        KAFKA_TOPIC_DEAD_LETTER="orders.dlq",
        SHOPEE_PUSH_KEY="test_partner_key_do_not_use",
        OUTBOX_RELAY_INTERVAL_SECONDS="0.2",
        **settings,
    )
    return Running(["serve", "--host", "127.0.0.1", "--port", str(port)], env)


async def make_topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("orders", 2, 1), NewTopic("orders.dlq", 1, 1)])
    finally:
        await admin.close()


def metric(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def first_answer(client: httpx.AsyncClient, path: str, proc: Running) -> httpx.Response:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            return await client.get(path)
        except httpx.TransportError:
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve never answered {path}: {proc.output()[-3000:]}") from None
            await asyncio.sleep(0.1)


async def test_serve_answers_at_once_unready_with_kafka_down_and_ready_when_it_comes(
    private_broker: PrivateBroker,
) -> None:
    await make_topics(private_broker.bootstrap)
    private_broker.stop()
    port = free_port()
    proc = serve(private_broker.bootstrap, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert (await first_answer(client, "/healthz", proc)).status_code == 200
            ready = await client.get("/readyz")
            # the first answers come while Kafka is still unreachable: start-up did not wait for it
            assert ready.status_code == 503
            assert "kafka: unavailable" in ready.text
            assert metric((await client.get("/metrics")).text, 'gateway_dependency_up{dependency="kafka"}') == 0
            private_broker.start(keep_data=True)
            deadline = time.monotonic() + WAIT_SECONDS
            while (ready := await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, f"never ready: {ready.text} {proc.output()[-2000:]}"
                await asyncio.sleep(0.3)
            assert metric((await client.get("/metrics")).text, 'gateway_dependency_up{dependency="kafka"}') == 1
        assert '"level":"info","logger":"service.ingest.sink","msg":"kafka is back"' in proc.output()
    finally:
        proc.close()


async def test_outbox_gauges_follow_the_table_while_kafka_is_down(
    private_broker: PrivateBroker, database_url: str
) -> None:
    await migrate(database_url)
    await make_topics(private_broker.bootstrap)
    port = free_port()
    proc = serve(private_broker.bootstrap, port, DATABASE_URL=database_url, INGEST_RESPONSE_BUDGET_SECONDS="1.0")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            ready = await first_answer(client, "/readyz", proc)
            while ready.status_code != 200:
                await asyncio.sleep(0.2)
                ready = await client.get("/readyz")
            private_broker.stop()
            for i in range(12):
                body = real_push(3, f"GAUGE{i:02d}")
                response = await client.post("/webhooks/shopee", content=body, headers=signed_headers(body))
                assert response.status_code == 200
            deadline = time.monotonic() + WAIT_SECONDS
            while True:
                text = (await client.get("/metrics")).text
                if metric(text, "gateway_outbox_depth") == 12:
                    break
                assert time.monotonic() < deadline, f"depth gauge stuck at {metric(text, 'gateway_outbox_depth')}"
                await asyncio.sleep(0.3)
            assert (metric(text, "gateway_outbox_oldest_age_seconds") or 0) > 0
            private_broker.start(keep_data=True)
            while metric((await client.get("/metrics")).text, "gateway_outbox_depth") != 0:
                assert time.monotonic() < deadline + WAIT_SECONDS, "the gauge did not follow the drain"
                await asyncio.sleep(0.3)
    finally:
        proc.close()


async def test_unreachable_outbox_database_is_logged_shown_in_readyz_and_a_metric(kafka_bootstrap: str) -> None:
    port = free_port()
    proc = serve(kafka_bootstrap, port, DATABASE_URL=f"postgresql://u:secret_pw@127.0.0.1:{free_port()}/gone")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            ready = await first_answer(client, "/readyz", proc)
            deadline = time.monotonic() + WAIT_SECONDS
            while "outbox database: unavailable" not in ready.text:
                assert time.monotonic() < deadline, ready.text
                await asyncio.sleep(0.2)
                ready = await client.get("/readyz")
            text = (await client.get("/metrics")).text
            assert metric(text, 'gateway_dependency_up{dependency="outbox_database"}') == 0
        log = proc.output()
        assert '"msg":"outbox database unavailable"' in log
        assert "secret_pw" not in log
    finally:
        proc.close()
