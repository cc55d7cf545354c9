"""The whole pipeline as real processes, for end-to-end and fault tests.

Stack: Shopee sandbox (`python -m service sandbox serve`), ingest (`serve`, with the
outbox on), consumer (`consume`), on the test broker and a fresh database, with topics
of the test's own. Every process can be killed and restarted by the test.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.migrate import migrate
from service.sandbox.config import DEFAULT_PARTNER_ID, DEFAULT_PARTNER_KEY, ORDER_DETAIL_PATH
from service.sandbox.demo_shops import fetch_shops, insert_shops
from service.sandbox.plan import Ledger, PushConfig
from service.sandbox.push import send_pushes
from service.settings import DEFAULT_OPTIONAL_FIELDS
from tests.conftest import free_port
from tests.processes import Process, child_env, service_argv
from tests.signer import api_signature

CALLBACK_PATH = "/webhooks/shopee"


@dataclass
class Stack:
    bootstrap: str
    database_url: str
    partitions: int = 4
    settings: dict[str, str] = field(default_factory=dict)
    sandbox_args: list[str] = field(default_factory=list)
    admin_bootstrap: str | None = None  # where topics are created, when `bootstrap` needs TLS/SASL
    replicas: int = 1  # replication factor of the stack's topics

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.topic, self.dlq, self.group = f"e2e.{tag}", f"e2e.{tag}.dlq", f"e2e-{tag}"
        self.sandbox_port, self.ingest_port = free_port(), free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.ingest_url = f"http://127.0.0.1:{self.ingest_port}"
        self.procs: list[Process] = []

    def env(self, **extra: str) -> dict[str, str]:
        defaults = dict(
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
        )
        return child_env(**{**defaults, **self.settings, **extra})

    async def start(self) -> Stack:
        await migrate(self.database_url)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.admin_bootstrap or self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(self.topic, self.partitions, self.replicas), NewTopic(self.dlq, 1, self.replicas)]
            )
        finally:
            await admin.close()
        self.sandbox = await self.start_proc(
            "sandbox", ["sandbox", "serve", "--port", str(self.sandbox_port), *self.sandbox_args]
        )
        await asyncio.to_thread(self.sandbox.wait_http, self.sandbox_url + "/healthz")
        self.ingest = await self.start_ingest()
        self.consumer = await self.start_consumer()
        return self

    async def start_proc(self, name: str, args: list[str], **env: str) -> Process:
        proc = Process(name, service_argv(*args), self.env(**env))
        self.procs.append(proc)
        return proc

    async def start_ingest(self, **env: str) -> Process:
        proc = await self.start_proc("ingest", ["serve", "--host", "127.0.0.1", "--port", str(self.ingest_port)], **env)
        await asyncio.to_thread(proc.wait_http, self.ingest_url + "/readyz")
        return proc

    async def start_consumer(self, name: str = "consumer", **env: str) -> Process:
        proc = await self.start_proc(name, ["consume"], **env)
        await asyncio.sleep(0.5)
        if not proc.alive():
            raise RuntimeError(f"consumer exited: {proc.output(3000)}")
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

    async def order_details(self, shop_id: int, order_sns: list[str]) -> dict[str, Any]:
        """What the sandbox answers get_order_detail for these orders (with the shop's stored
        token and the default optional fields), by order SN; signed with the tests' own signer."""
        conn = await asyncpg.connect(self.database_url)
        try:
            token = await conn.fetchval(
                "SELECT access_token FROM merchant_shopee_config WHERE shop_id = $1", str(shop_id)
            )
        finally:
            await conn.close()
        stamp = int(time.time())
        sign = api_signature(DEFAULT_PARTNER_KEY, DEFAULT_PARTNER_ID, ORDER_DETAIL_PATH, stamp, token, str(shop_id))
        query = {
            "partner_id": DEFAULT_PARTNER_ID,
            "timestamp": stamp,
            "access_token": token,
            "shop_id": shop_id,
            "sign": sign,
            "order_sn_list": ",".join(order_sns),
            "response_optional_fields": DEFAULT_OPTIONAL_FIELDS,
        }
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(self.sandbox_url + ORDER_DETAIL_PATH, params=query)
        response.raise_for_status()
        return {d["order_sn"]: d for d in response.json()["response"]["order_list"]}

    async def ingest_metrics(self) -> dict[str, float]:
        """The ingest's /metrics samples, by name with labels (e.g. `x_count{sink="kafka"}`)."""
        async with httpx.AsyncClient(timeout=10) as client:
            text = (await client.get(self.ingest_url + "/metrics")).text
        samples = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        return {name: float(value) for name, value in samples}

    async def handled_within(self, seconds: float) -> tuple[int, int]:
        """(pushes the ingest answered within `seconds`, all pushes it answered), as it measured them."""
        samples = await self.ingest_metrics()
        within = samples[f'gateway_ingest_handling_seconds_bucket{{le="{seconds:.1f}"}}']
        return int(within), int(samples["gateway_ingest_handling_seconds_count"])

    async def set_faults(self, **faults: float) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            (await client.post(self.sandbox_url + "/sandbox/faults", json=faults)).raise_for_status()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


async def start_stack(
    stacks: list[Stack], bootstrap: str, database_url: str, *, partitions: int = 4, replicas: int = 1, **settings: str
) -> Stack:
    """A stack with 1 s batches, in `stacks` (the fixture that stops them after the test)."""
    stack = Stack(
        bootstrap,
        database_url,
        partitions=partitions,
        settings={"BATCH_TIMEOUT_SECONDS": "1", **settings},
        replicas=replicas,
    )
    stacks.append(stack)
    return await stack.start()


def assert_all_acknowledged_first_time(ledger: Ledger) -> None:
    """Shopee never had to retry: every push's first attempt was a 2xx with an empty body
    within Shopee's timeout (the push sender's, 3 s)."""
    late = [(e.order_sn, e.status, e.codes, e.error) for e in ledger.entries if e.attempts != 1 or not e.acknowledged]
    assert not late, f"{len(late)} of {len(ledger.entries)} pushes needed a retry or failed, e.g. {late[:5]}"


def merged(*ledgers: Ledger) -> Ledger:
    return Ledger(entries=[e for ledger in ledgers for e in ledger.entries])


async def scalar(database_url: str, query: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(query))
    finally:
        await conn.close()


async def outbox_depth(database_url: str) -> int:
    return await scalar(database_url, "SELECT count(*) FROM gateway_outbox")


async def order_rows(database_url: str) -> int:
    return await scalar(database_url, "SELECT count(*) FROM shopee_orders_raw")
