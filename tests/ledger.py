"""The ledger check (docs/contract.md#guarantees), reusable by every end-to-end and fault test.

Given the push sender's ledger of what Shopee would have seen acknowledged, wait until
each acknowledged order-status push is accounted for, then assert:
- every order whose newest acknowledged push is not UNPAID is one row with that newest
  state (status and update_time), or has a dead letter with a reason;
- no other rows: none for an order whose every push was UNPAID, none for an order never
  pushed. (Duplicate rows cannot exist: the table has UNIQUE (shop_id, order_sn).)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from service.records import DeadLetter
from service.sandbox.plan import Ledger
from tests.conftest import read_topic


@dataclass
class LedgerReport:
    expected: int
    rows: int
    dead_lettered: int


async def check_ledger(
    ledger: Ledger,
    database_url: str,
    *,
    bootstrap: str,
    dlq_topic: str,
    wait_seconds: float = 90,
    allow_dead_letters: bool = False,
) -> LedgerReport:
    expected = ledger.expected_orders()
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + wait_seconds
        letters: dict[tuple[str, str], DeadLetter] = {}
        while True:
            rows = await conn.fetch("SELECT shop_id, order_sn, order_status, update_time FROM shopee_orders_raw")
            got = {(r["shop_id"], r["order_sn"]): (r["order_status"], r["update_time"]) for r in rows}
            behind = [k for k, v in expected.items() if k not in letters and got.get(k) != v]
            if not behind:
                break
            if time.monotonic() > deadline:
                sample = [(k, expected[k], got.get(k)) for k in behind[:5]]
                raise AssertionError(
                    f"{len(behind)} of {len(expected)} acknowledged orders not in their newest state: {sample}"
                )
            for record in await read_topic(bootstrap, dlq_topic, wait_seconds=1):
                letter = DeadLetter.decode(record.value)
                if letter.record:
                    letters[(str(letter.record["shop_id"]), str(letter.record["order_sn"]))] = letter
            await asyncio.sleep(1)
    finally:
        await conn.close()
    stray = sorted(set(got) - set(expected))
    assert not stray, f"{len(stray)} rows for orders with no acknowledged paid push, e.g. {stray[:5]}"
    dead = [k for k in expected if k in letters and got.get(k) != expected[k]]
    if not allow_dead_letters:
        assert not dead, f"{len(dead)} orders were dead-lettered, e.g. {[(k, letters[k].reason) for k in dead[:3]]}"
    assert all(letters[k].reason for k in dead)
    return LedgerReport(expected=len(expected), rows=len(expected) - len(dead), dead_lettered=len(dead))
