"""The whole pipeline as real processes, for end-to-end and fault tests.

Stack: Shopee sandbox (`python -m service sandbox serve`), ingest (`serve`, with the
outbox on), consumer (`consume`), on the test broker and a fresh database, with topics
of the test's own. Every process can be killed and restarted by the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.migrate import migrate
from service.sandbox.config import DEFAULT_PARTNER_ID, DEFAULT_PARTNER_KEY
from service.sandbox.demo_shops import fetch_shops, insert_shops
from service.sandbox.plan import Ledger, PushConfig
from service.sandbox.push import send_pushes
from tests.conftest import free_port

CALLBACK_PATH = "/webhooks/shopee"


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None
    log: Any = None

    def start(self) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "service", *self.args], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        return str(self.log.read().decode(errors="replace"))

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.popen is not None and self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.popen is None:
            return None
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.log is not None:
            self.log.close()
            self.log = None
        return self.popen.returncode


async def wait_http(url: str, proc: Proc, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited: {proc.output()[-3000:]}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{proc.name} did not answer {url} within {seconds}s: {proc.output()[-3000:]}")


@dataclass
class Stack:
    bootstrap: str
    database_url: str
    partitions: int = 4
    settings: dict[str, str] = field(default_factory=dict)
    sandbox_args: list[str] = field(default_factory=list)
    admin_bootstrap: str | None = None  # where topics are created, when `bootstrap` needs TLS/SASL

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.topic, self.dlq, self.group = f"e2e.{tag}", f"e2e.{tag}.dlq", f"e2e-{tag}"
        self.sandbox_port, self.ingest_port = free_port(), free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.ingest_url = f"http://127.0.0.1:{self.ingest_port}"
        self.procs: list[Proc] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            KAFKA_TOPIC_MARKETPLACE_ORDERS=self.topic,
            KAFKA_TOPIC_DEAD_LETTER=self.dlq,
            KAFKA_CONSUMER_GROUP=self.group,
            DATABASE_URL=self.database_url,
            SHOPEE_PARTNER_ID=str(DEFAULT_PARTNER_ID),
            SHOPEE_PARTNER_KEY=DEFAULT_PARTNER_KEY,
            SHOPEE_CALLBACK_URL=self.ingest_url + CALLBACK_PATH,
            SHOPEE_API_BASE_URL=self.sandbox_url,
            BATCH_TIMEOUT_SECONDS="2",
            RETRY_BASE_SECONDS="0.1",
            RETRY_MAX_SECONDS="1",
            SHUTDOWN_GRACE_SECONDS="5",
            CONSUMER_METRICS_PORT="0",
            OUTBOX_RELAY_INTERVAL_SECONDS="0.2",
            LOG_LEVEL="WARNING",
        )
        env.update(self.settings)
        env.update(extra)
        return env

    async def start(self) -> Stack:
        await migrate(self.database_url)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.admin_bootstrap or self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.topic, self.partitions, 1), NewTopic(self.dlq, 1, 1)])
        finally:
            await admin.close()
        self.sandbox = await self.start_proc(
            "sandbox", ["sandbox", "serve", "--port", str(self.sandbox_port), *self.sandbox_args]
        )
        await wait_http(self.sandbox_url + "/healthz", self.sandbox)
        self.ingest = await self.start_ingest()
        self.consumer = await self.start_consumer()
        return self

    async def start_proc(self, name: str, args: list[str], **env: str) -> Proc:
        proc = Proc(name, args, self.env(**env))
        proc.start()
        self.procs.append(proc)
        return proc

    async def start_ingest(self, **env: str) -> Proc:
        proc = await self.start_proc("ingest", ["serve", "--host", "127.0.0.1", "--port", str(self.ingest_port)], **env)
        await wait_http(self.ingest_url + "/readyz", proc)
        return proc

    async def start_consumer(self, name: str = "consumer", **env: str) -> Proc:
        proc = await self.start_proc(name, ["consume"], **env)
        await asyncio.sleep(0.5)
        if not proc.alive():
            raise RuntimeError(f"consumer exited: {proc.output()[-3000:]}")
        return proc

    async def add_shops(self, shop_ids: list[int]) -> None:
        """Create the shops in the sandbox and store their credentials."""
        await insert_shops(self.database_url, await fetch_shops(self.sandbox_url, shop_ids))

    async def push(self, client: httpx.AsyncClient | None = None, **config: Any) -> Ledger:
        """Send pushes with the sandbox's push sender (Shopee's retries, time-scaled).

        `client`: the HTTP client to send with (e.g. one that times every answer).
        """
        options: dict[str, Any] = {
            "url": self.ingest_url + CALLBACK_PATH,
            "push_key": DEFAULT_PARTNER_KEY,
            "sandbox_url": self.sandbox_url,
            "time_scale": 600.0,
            "seed": 7,
        }
        options.update(config)
        return await send_pushes(PushConfig(**options), client=client)

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(self.sandbox_url + "/sandbox/stats")
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    async def set_faults(self, **faults: float) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            (await client.post(self.sandbox_url + "/sandbox/faults", json=faults)).raise_for_status()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
