"""Issue 11, item 1: every command exits after SIGTERM within its grace period plus a
cleanup margin, whatever is down (the broker SIGKILLed, Postgres gone or partitioned)
and whatever it is doing (idle, a batch in flight, rows in the outbox).

The bound is behaviour, not latency: before the fix `consume` was still running 8 minutes
after SIGTERM with its broker and database gone. Each bound is the command's configured
grace + its documented cleanup bound + a generous margin for a loaded machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.consume.main import CLEANUP_SECONDS
from service.migrate import migrate
from tests.commands import Running, command_env
from tests.conftest import PrivateBroker, free_port
from tests.consume_helpers import PARTNER_ID, PARTNER_KEY, order, produce
from tests.pushes import real_push, signed_headers
from tests.sandbox_server import SandboxServer
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

GRACE_SECONDS = 3.0
MARGIN_SECONDS = 20.0  # interpreter exit, a loaded CI machine
CONSUME_BOUND = GRACE_SECONDS + CLEANUP_SECONDS + MARGIN_SECONDS
# uvicorn's graceful timeout (10 s) + the sink's stop bounds (outbox writer 5, pool 3, producer 5)
SERVE_BOUND = 10 + 13 + MARGIN_SECONDS


def through(proxy: TcpProxy, database_url: str) -> str:
    parts = urlsplit(database_url)
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@127.0.0.1:{proxy.port}"))


@pytest.fixture
def db_proxy(database_url: str) -> Iterator[TcpProxy]:
    proxy = TcpProxy(urlsplit(database_url).port or 5432)
    yield proxy
    proxy.cut()


async def make_topics(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1), NewTopic(topic + ".dlq", 1, 1)])
    finally:
        await admin.close()


async def start_consumer(broker: PrivateBroker, database_url: str, shopee_url: str) -> Running:
    await migrate(database_url)
    await make_topics(broker.bootstrap, "orders")
    env = command_env(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        KAFKA_TOPIC_MARKETPLACE_ORDERS="orders",
        KAFKA_TOPIC_DEAD_LETTER="orders.dlq",
        KAFKA_CONSUMER_GROUP="shutdown-test",
        DATABASE_URL=database_url,
        SHOPEE_PARTNER_ID=str(PARTNER_ID),
        SHOPEE_PARTNER_KEY=PARTNER_KEY,
        SHOPEE_API_BASE_URL=shopee_url,
        SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        BATCH_TIMEOUT_SECONDS="0.5",
    )
    proc = Running(["consume"], env)
    proc.wait_for_output("partitions assigned")
    return proc


async def test_consume_exits_in_bound_with_its_broker_killed_and_postgres_gone(
    private_broker: PrivateBroker, database_url: str, db_proxy: TcpProxy, sandbox: SandboxServer
) -> None:
    proc = await start_consumer(private_broker, through(db_proxy, database_url), sandbox.url)
    try:
        private_broker.kill()
        db_proxy.cut()
        await asyncio.sleep(3)  # let it notice: reconnect loops are where it used to hang
        assert proc.terminate_and_wait(CONSUME_BOUND) is not None, proc.output()[-3000:]
    finally:
        proc.close()
        private_broker.start(keep_data=True)  # the fixture stops it


async def test_consume_exits_in_bound_with_a_batch_in_flight_and_the_broker_killed(
    private_broker: PrivateBroker, database_url: str, sandbox: SandboxServer
) -> None:
    sandbox.set_faults(latency_ms=600_000)  # Shopee never answers within the grace period
    await migrate(database_url)
    await sandbox.add_shop(database_url, "501")
    proc = await start_consumer(private_broker, database_url, sandbox.url)
    try:
        await produce(private_broker.bootstrap, "orders", [order("501", "SLOW1")])
        proc.wait_until(lambda: bool(sandbox.order_calls("501")), "the batch's Shopee call")
        private_broker.kill()
        assert proc.terminate_and_wait(CONSUME_BOUND) is not None, proc.output()[-3000:]
    finally:
        proc.close()
        private_broker.start(keep_data=True)


async def test_consume_exits_in_bound_with_postgres_partitioned_mid_batch(
    private_broker: PrivateBroker, database_url: str, db_proxy: TcpProxy, sandbox: SandboxServer
) -> None:
    await migrate(database_url)
    await sandbox.add_shop(database_url, "502")
    proc = await start_consumer(private_broker, through(db_proxy, database_url), sandbox.url)
    try:
        db_proxy.freeze()  # the upsert and the token lookup hang on a silent socket
        await produce(private_broker.bootstrap, "orders", [order("502", "STUCK1")])
        await asyncio.sleep(2)
        code = proc.terminate_and_wait(CONSUME_BOUND)
        assert code is not None, proc.output()[-3000:]
    finally:
        proc.close()


async def test_serve_exits_in_bound_with_kafka_killed_and_the_outbox_partitioned(
    private_broker: PrivateBroker, database_url: str, db_proxy: TcpProxy
) -> None:
    await migrate(database_url)
    await make_topics(private_broker.bootstrap, "orders")
    port = free_port()
    env = command_env(
        KAFKA_BOOTSTRAP_SERVERS=private_broker.bootstrap,
        KAFKA_TOPIC_MARKETPLACE_ORDERS="orders",
        KAFKA_TOPIC_DEAD_LETTER="orders.dlq",
        DATABASE_URL=through(db_proxy, database_url),
        SHOPEE_PUSH_KEY="test_partner_key_do_not_use",
        OUTBOX_RELAY_INTERVAL_SECONDS="0.2",
    )
    proc = Running(["serve", "--host", "127.0.0.1", "--port", str(port)], env)
    try:
        proc.wait_for_output("Application startup complete")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            private_broker.kill()
            body = real_push(7, "OUTAGE1")
            # Kafka gone: the outbox takes it; then the outbox database stops answering too
            assert (
                await client.post("/webhooks/shopee", content=body, headers=signed_headers(body))
            ).status_code == 200
            db_proxy.freeze()
            body = real_push(7, "OUTAGE2")
            await client.post("/webhooks/shopee", content=body, headers=signed_headers(body))
        assert proc.terminate_and_wait(SERVE_BOUND) is not None, proc.output()[-3000:]
    finally:
        proc.close()
        private_broker.start(keep_data=True)
