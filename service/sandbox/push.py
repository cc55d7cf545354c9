"""The push sender: signed code-3 pushes delivered the way Shopee delivers them.

Each push is POSTed with `Authorization: <push signature>`. It counts as acknowledged
only for a 2xx with an empty body within the timeout (docs/contract.md: push signature,
what Shopee expects back); otherwise it is retried after 5 min, 30 min and 3 h (divided
by `time_scale`), and a push that exhausts its retries becomes a lost push, fetchable
from the sandbox's get_lost_push_message. Before sending, each order's final state is registered with the
sandbox, so get_order_detail agrees with the newest push.

`lost_fraction` of the pushes skip delivery and go straight to the lost-push queue (as
if every retry had failed); `silent_fraction` are never sent at all, though their
orders still change in the sandbox: what reconciliation must find.

At most `concurrency` requests are in flight; first attempts are taken from a queue by
that many workers, retries wait in tasks of their own so they never block new pushes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from typing import TypedDict

import httpx
import orjson

from service.sandbox.config import Clock, Sleep, system_clock
from service.sandbox.plan import Ledger, LedgerEntry, PlannedPush, PushConfig, build_plan
from service.sandbox.state import SandboxState
from service.signing import push_signature

log = logging.getLogger(__name__)

REGISTER_CHUNK = 1000


class _Sender:
    def __init__(self, config: PushConfig, client: httpx.AsyncClient, sleep: Sleep) -> None:
        self.config = config
        self.client = client
        self.sleep = sleep
        self.key = config.push_key.encode()
        self.gate = asyncio.Semaphore(max(1, config.concurrency))
        self.retries: set[asyncio.Task[None]] = set()
        self.lost: list[PlannedPush] = []
        self.fate_rng = random.Random(None if config.seed is None else config.seed + 1)

    def fate(self) -> str:
        """deliver, lost (straight to the lost-push queue) or silent (never sent)."""
        roll = self.fate_rng.random()
        if roll < self.config.lost_fraction:
            return "lost"
        return "silent" if roll < self.config.lost_fraction + self.config.silent_fraction else "deliver"

    async def attempt(self, push: PlannedPush, entry: LedgerEntry) -> bool:
        headers = {
            "Authorization": push_signature(self.key, self.config.signed_url, push.body),
            "Content-Type": "application/json",
        }
        entry.attempts += 1
        async with self.gate:
            try:
                response = await self.client.post(
                    self.config.url, content=push.body, headers=headers, timeout=self.config.timeout_seconds
                )
            except httpx.HTTPError as exc:
                entry.status_code, entry.error = None, type(exc).__name__
                entry.codes.append(None)
                return False
        entry.status_code = response.status_code
        entry.codes.append(response.status_code)
        ok = response.is_success and (not self.config.require_empty_body or not response.content)
        entry.error = None if ok else ("non-empty 2xx body" if response.is_success else f"HTTP {response.status_code}")
        entry.acknowledged = ok
        return ok

    async def retry(self, push: PlannedPush, entry: LedgerEntry) -> None:
        for delay in self.config.retry_delays_seconds:
            await self.sleep(delay / self.config.time_scale)
            if await self.attempt(push, entry):
                return
        entry.lost = True
        self.lost.append(push)

    async def worker(self, queue: asyncio.Queue[tuple[PlannedPush, LedgerEntry]]) -> None:
        while True:
            try:
                push, entry = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if not await self.attempt(push, entry):
                if self.config.retry_delays_seconds:
                    task = asyncio.create_task(self.retry(push, entry))
                    self.retries.add(task)
                    task.add_done_callback(self.retries.discard)
                else:
                    entry.lost = True
                    self.lost.append(push)

    async def run(self, plan: list[PlannedPush], ledger: Ledger) -> None:
        queue: asyncio.Queue[tuple[PlannedPush, LedgerEntry]] = asyncio.Queue()
        for push in plan:
            entry = LedgerEntry(push.shop_id, push.order_sn, push.status, push.update_time, duplicate=push.duplicate)
            ledger.entries.append(entry)
            fate = self.fate()
            if fate == "lost":
                entry.lost = True
                self.lost.append(push)
            elif fate == "silent":
                entry.silent = True
            else:
                queue.put_nowait((push, entry))
        await asyncio.gather(*(self.worker(queue) for _ in range(max(1, self.config.concurrency))))
        while self.retries:
            await asyncio.gather(*list(self.retries))


def final_states(plan: list[PlannedPush]) -> list[PlannedPush]:
    """The newest push of each order."""
    latest: dict[tuple[int, str], PlannedPush] = {}
    for push in plan:
        key = (push.shop_id, push.order_sn)
        if key not in latest or latest[key].update_time < push.update_time:
            latest[key] = push
    return list(latest.values())


def order_json(push: PlannedPush) -> dict[str, object]:
    return {
        "shop_id": push.shop_id,
        "order_sn": push.order_sn,
        "order_status": push.status,
        "update_time": push.update_time,
    }


class LostRecord(TypedDict):
    shop_id: int
    code: int
    timestamp: int
    data: str


def lost_json(push: PlannedPush, lost_at: int) -> LostRecord:
    """A lost push as get_lost_push_message returns it: `data` is the original JSON string,
    `timestamp` when it was lost (not when it was sent)."""
    body = orjson.loads(push.body)
    data = orjson.dumps(body["data"]).decode()
    return LostRecord(shop_id=push.shop_id, code=body["code"], timestamp=lost_at, data=data)


async def _post_chunks(client: httpx.AsyncClient, url: str, key: str, items: Sequence[Mapping[str, object]]) -> None:
    for start in range(0, len(items), REGISTER_CHUNK):
        response = await client.post(url, content=orjson.dumps({key: items[start : start + REGISTER_CHUNK]}))
        response.raise_for_status()


async def send_pushes(
    config: PushConfig,
    *,
    client: httpx.AsyncClient | None = None,
    sandbox: SandboxState | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = system_clock,
) -> Ledger:
    """Send the planned pushes; return the ledger of every delivery.

    `sandbox`: an in-process sandbox to register orders and lost pushes with directly;
    otherwise `config.sandbox_url` (if set) gets them over HTTP through `client`.
    """
    plan = build_plan(config, clock())
    own_client = client is None
    http = client or httpx.AsyncClient(limits=httpx.Limits(max_connections=max(1, config.concurrency)))
    ledger = Ledger(started_at=clock())
    try:
        states = final_states(plan)
        if sandbox is not None:
            for p in states:
                sandbox.orders.register(p.shop_id, p.order_sn, p.status, p.update_time)
        elif config.sandbox_url:
            orders = [order_json(p) for p in states]
            await _post_chunks(http, config.sandbox_url.rstrip("/") + "/sandbox/orders", "orders", orders)
        sender = _Sender(config, http, sleep)
        await sender.run(plan, ledger)
        lost = [lost_json(p, int(clock())) for p in sender.lost]
        if sandbox is not None:
            for r in lost:
                sandbox.add_lost_push(r["shop_id"], r["code"], r["timestamp"], r["data"])
        elif config.sandbox_url and lost:
            await _post_chunks(http, config.sandbox_url.rstrip("/") + "/sandbox/lost-pushes", "pushes", lost)
    finally:
        if own_client:
            await http.aclose()
    ledger.finished_at = clock()
    log.info("pushes sent", extra=ledger.summary())
    return ledger
