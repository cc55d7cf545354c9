"""Helpers for the recover tests: run `recover --once` against an e2e Stack, read the outcome."""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import asyncpg
import httpx
import orjson

from service.sandbox.plan import Ledger
from tests.conftest import read_topic
from tests.e2e import Stack
from tests.processes import Process, service_argv

RECOVER_ENV = {"RECOVER_LAG_SECONDS": "60", "LOG_LEVEL": "INFO", "RECOVER_SHOP_CALLS_PER_MINUTE": "30"}


def start_recover(stack: Stack, name: str = "recover", **env: str) -> Process:
    proc = Process(name, service_argv("recover", "--once"), stack.env(**{**RECOVER_ENV, **env}))
    stack.procs.append(proc)
    return proc


async def run_recover(stack: Stack, wait_seconds: float = 180, **env: str) -> tuple[int, str]:
    """`python -m service recover --once` to its end: (exit code, output)."""
    proc = start_recover(stack, **env)
    try:
        code = await asyncio.to_thread(proc.popen.wait, wait_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"recover --once did not finish within {wait_seconds}s: {proc.output(3000)}") from None
    return code, proc.output()


async def sandbox_post(stack: Stack, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(stack.sandbox_url + path, json=body)
        response.raise_for_status()
        return response.json()


async def lost_pending(stack: Stack) -> int:
    return int((await stack.stats())["lost_pushes_pending"])


def newest_states(ledgers: list[Ledger]) -> dict[tuple[str, str], str]:
    """(shop_id, order_sn) -> Shopee's newest status, from every planned push whatever its fate."""
    newest: dict[tuple[str, str], tuple[int, str]] = {}
    for ledger in ledgers:
        for e in ledger.entries:
            key = (str(e.shop_id), e.order_sn)
            if key not in newest or newest[key][0] <= e.update_time:
                newest[key] = (e.update_time, e.status)
    return {k: v[1] for k, v in newest.items()}


async def wait_for_states(database_url: str, expected: dict[tuple[str, str], str], wait_seconds: float = 120) -> None:
    """Until every expected order is one row with the expected status; then no duplicates."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            rows = await conn.fetch("SELECT shop_id, order_sn, order_status FROM shopee_orders_raw")
            got = {(r["shop_id"], r["order_sn"]): r["order_status"] for r in rows}
            behind = [(k, v, got.get(k)) for k, v in expected.items() if got.get(k) != v]
            if not behind:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(behind)} of {len(expected)} orders not in Shopee's state: {behind[:5]}")
            await asyncio.sleep(0.5)
        duplicates = await conn.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM shopee_orders_raw GROUP BY shop_id, order_sn HAVING count(*) > 1) d"
        )
        assert duplicates == 0, f"{duplicates} duplicate rows"
    finally:
        await conn.close()


async def runs(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch("SELECT * FROM recover_runs ORDER BY id"))
    finally:
        await conn.close()


async def recovered_records(stack: Stack, wait_seconds: float = 3) -> list[dict[str, Any]]:
    """The records recovery put on the main topic (they carry a `source`)."""
    records = await read_topic(stack.bootstrap, stack.topic, wait_seconds=wait_seconds)
    values = [orjson.loads(r.value) for r in records]
    return [v for v in values if v.get("source") in ("lost_push", "reconcile")]
