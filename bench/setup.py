"""What the benchmarks set up: topics, databases, the sandbox Shopee and the services'
environments. Everything listens on and talks to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from bench.report import fail
from tests.processes import ROOT, Process, child_env, free_port, service_argv


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        fail(
            f"{name} is not set. Run through make (e.g. `make bench-ingest`), or as "
            f"`scripts/with-services.sh KAFKA_PORT PG_PORT .venv/bin/python -m bench.<name>`."
        )
        raise AssertionError  # unreachable
    if not any(h in value for h in ("127.0.0.1", "localhost")):
        fail(f"{name}={value} is not local: benchmarks only talk to 127.0.0.1")
    return value


def run_checked(argv: Sequence[str], env: Mapping[str, str], timeout: float = 120) -> str:
    done = subprocess.run(list(argv), env=dict(env), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        fail(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


# -- Kafka -------------------------------------------------------------------------------


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    finally:
        await admin.close()
    # wait until every partition has a leader, so the first produce does not stall
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        for name in names:
            while True:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(name)
                if parts and len(parts) == partitions:
                    break
                if time.monotonic() > deadline:
                    fail(f"topic {name} has no leaders after 30 s")
                await asyncio.sleep(0.2)
    finally:
        await consumer.stop()


async def topic_records(bootstrap: str, topic: str) -> int:
    """Records in the topic: the sum over partitions of end offset minus start offset."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return 0
        end = await consumer.end_offsets(tps)
        start = await consumer.beginning_offsets(tps)
        return sum(end[tp] - start[tp] for tp in tps)
    finally:
        await consumer.stop()


# -- Postgres ----------------------------------------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    """The same server and credentials as `admin_url`, database `name`."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def fresh_database(admin_url: str, name: str) -> str:
    """CREATE DATABASE `name` (dropped first if left over) and return its URL."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(admin_url, name)


async def postgres_version(url: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()


def migrate(db_url: str) -> None:
    run_checked(service_argv("migrate"), child_env(DATABASE_URL=db_url))


@dataclass(frozen=True)
class Run:
    """A benchmark run's own topic (and dead-letter topic), migrated database and machine."""

    bootstrap: str
    admin_url: str
    run_id: str
    topic: str
    db_url: str
    info: dict[str, str]


def prepare(name: str, partitions: int) -> Run:
    from bench.profile import stamp
    from bench.report import machine

    bootstrap, admin_url = require_env("KAFKA_BOOTSTRAP_SERVERS"), require_env("TEST_DATABASE_URL")
    info = machine(postgres=asyncio.run(postgres_version(admin_url)))
    run_id = stamp()
    topic = f"bench.{name}.{run_id}"
    asyncio.run(create_topics(bootstrap, [topic, topic + ".dlq"], partitions))
    db_url = asyncio.run(fresh_database(admin_url, f"bench_{name}_{run_id}"))
    migrate(db_url)
    return Run(bootstrap, admin_url, run_id, topic, db_url, info)


# -- the sandbox Shopee ------------------------------------------------------------------

PARTNER_ID = 2001887
PARTNER_KEY = "bench_partner_key_not_secret"


def start_sandbox(db_url: str, shops: int, shop_base: int) -> tuple[Process, str]:
    """The sandbox Shopee (any shop, deterministic tokens, auto-orders, no latency, no rate
    limit) with `shops` shops' credentials stored in `db_url`; returns it and its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    keys = ["--partner-id", str(PARTNER_ID), "--partner-key", PARTNER_KEY]
    argv = service_argv("sandbox", "serve", "--port", str(port), *keys, "--log-level", "WARNING")
    sandbox = Process("sandbox", argv, child_env())
    try:
        sandbox.wait_http(url + "/healthz")
        demo = ["demo-shops", "--shops", str(shops), "--shop-id-base", str(shop_base), *keys, "--database-url", db_url]
        run_checked(service_argv("sandbox", *demo), child_env())
    except BaseException:
        sandbox.stop()
        raise
    return sandbox, url


def kafka_env(bootstrap: str, topic: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_MARKETPLACE_ORDERS": topic,
        "KAFKA_TOPIC_DEAD_LETTER": topic + ".dlq",
    }


def consumer_env(db_url: str, bootstrap: str, topic: str, sandbox_url: str, **settings: str) -> dict[str, str]:
    """`consume` on `topic` (its group named after it) against the sandbox, into `db_url`."""
    return child_env(
        DATABASE_URL=db_url,
        KAFKA_CONSUMER_GROUP=f"bench-{topic}",
        SHOPEE_PARTNER_ID=str(PARTNER_ID),
        SHOPEE_PARTNER_KEY=PARTNER_KEY,
        SHOPEE_API_BASE_URL=sandbox_url,
        **kafka_env(bootstrap, topic),
        **settings,
    )


def serve_argv(port: int) -> list[str]:
    return service_argv("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1")
