"""Factory fixtures shared by the tests.

Integration tests use the real Kafka broker and Postgres cluster that `make test`
(scripts/with-services.sh) starts; when they are missing the tests FAIL and say why,
they never skip. Every test gets its own topics and its own database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.processes import ROOT, free_port

__all__ = ["ROOT", "free_port"]  # imported from here by many tests

NEEDS_SERVICES = "start them with `make test` (scripts/with-services.sh), which sets {var}"


def _require_env(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"{var} is not set: integration tests need the real service; " + NEEDS_SERVICES.format(var=var))
    return value


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    servers = _require_env("KAFKA_BOOTSTRAP_SERVERS")
    host, _, port = servers.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"Kafka at {servers} is not reachable ({exc}); " + NEEDS_SERVICES.format(var="it"))
    return servers


TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def new_topic(kafka_bootstrap: str) -> AsyncIterator[TopicFactory]:
    """`await new_topic(partitions=3)` -> a fresh, uniquely named topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    created: list[str] = []

    async def make(partitions: int = 1, prefix: str = "t") -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        await admin.create_topics([NewTopic(name=name, num_partitions=partitions, replication_factor=1)])
        created.append(name)
        return name

    try:
        yield make
    finally:
        if created:
            with contextlib.suppress(Exception):  # a leftover test topic harms nothing
                await admin.delete_topics(created)
        await admin.close()


async def read_topic(bootstrap: str, topic: str, *, expect: int | None = None, wait_seconds: float = 10.0) -> list[Any]:
    """All records on `topic` from the beginning (waits for `expect` records, if given)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                records.extend(recs)
            if expect is not None and len(records) >= expect:
                # one more short poll to catch records beyond the expected count
                extra = await consumer.getmany(timeout_ms=300)
                for recs in extra.values():
                    records.extend(recs)
                break
            if expect is None and not batch:
                break
    finally:
        await consumer.stop()
    return records


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return _require_env("TEST_DATABASE_URL")


@pytest.fixture
async def database_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for this test; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    try:
        conn = await asyncpg.connect(pg_admin_url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"Postgres at TEST_DATABASE_URL is not reachable ({exc}); " + NEEDS_SERVICES.format(var="it"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = pg_admin_url.rpartition("/")
    yield f"{base}/{name}"
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class PrivateBroker:
    """A Kafka broker of this test's own, on its own port, that the test may stop and start."""

    def __init__(self, port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.env = env or {}  # scripts/kafka.sh options, e.g. KAFKA_EXTRA_CONFIG

    def _run(self, action: str, keep_data: bool) -> None:
        env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_KEEP_DATA": "1" if keep_data else "0",
            **self.env,
        }
        done = subprocess.run([str(ROOT / "scripts/kafka.sh"), action], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh {action} on port {self.port} failed: {done.stderr[-3000:]}")

    def start(self, *, keep_data: bool = True) -> None:
        self._run("up", keep_data)

    def stop(self) -> None:
        self._run("down", True)

    def wipe(self) -> None:
        """Stop the broker and delete its data."""
        self._run("wipe", True)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would."""
        pid_file = ROOT / f".cache/kafka/run-{self.port}/kafka.pid"
        pid = int(pid_file.read_text())
        os.kill(pid, 9)
        pid_file.unlink()


@pytest.fixture
def private_broker(kafka_bootstrap: str) -> Iterator[PrivateBroker]:
    """A broker of the test's own, on ports below the ephemeral range.

    The broker's controller listens on port + 1. Picked among ephemeral ports, either port
    can be taken by an outgoing connection between the check and the bind (at start or at
    a restart during the test), and the broker then fails to come up.
    """
    broker = PrivateBroker(private_ports(2))
    broker.start(keep_data=False)
    try:
        yield broker
    finally:
        broker.stop()


def private_ports(count: int) -> int:
    """The first of `count` free consecutive ports below the ephemeral range."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    while True:
        port = rng.randrange(max(1024, low - 12000), low - count)
        if not any(_port_busy(p) for p in range(port, port + count)):
            return port


@pytest.fixture(scope="session")
def secure_broker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One broker with a private CA and SASL_SSL/PLAIN, SASL_SSL/SCRAM-SHA-512 and mTLS listeners."""
    from tests.secure_broker import start_secure_broker

    with start_secure_broker(tmp_path_factory.mktemp("secure-broker")) as broker:
        yield broker


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def sandbox() -> Iterator[Any]:
    """The sandbox Shopee app served over HTTP from a thread (tests.sandbox_server.SandboxServer)."""
    from tests.sandbox_server import SandboxServer

    server = SandboxServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def stacks() -> AsyncIterator[list[Any]]:
    """Whole-pipeline stacks (tests.e2e.start_stack) started by the test, stopped afterwards whatever happened."""
    started: list[Any] = []
    try:
        yield started
    finally:
        for stack in started:
            stack.stop()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For a test that calls setup_logging: the root handlers and logger levels are put back after it."""
    root = logging.getLogger()
    names = ("", "aiokafka", "httpx", "httpcore")
    saved = root.handlers[:], {name: logging.getLogger(name).level for name in names}
    try:
        yield
    finally:
        root.handlers[:] = saved[0]
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture(autouse=True)
def _unit_tests_ignore_the_environment(request: pytest.FixtureRequest) -> Iterator[None]:
    """Unit tests build Settings from what they pass in, not from the shell that runs them."""
    if request.node.get_closest_marker("integration") is not None:
        yield
        return
    from tests.fakes import environment_without_settings

    with environment_without_settings():
        yield


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    """The k8s/ kustomization rendered (tests/k8s_render.py, a small `kustomize build`)."""
    from tests.k8s_checks import K8S
    from tests.k8s_render import render

    return render(K8S)


@pytest.fixture(scope="module")
def secret_template() -> dict[str, Any]:
    """The Secret template shipped beside the manifests (not part of the kustomization)."""
    from tests.k8s_checks import K8S, SECRET_TEMPLATE
    from tests.k8s_render import load_documents

    (secret,) = load_documents(K8S / SECRET_TEMPLATE)
    return secret
