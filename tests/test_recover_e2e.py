"""`recover --once` against the real stack: sandbox, ingest, consumer, Kafka, Postgres.

Orders reach Shopee's newest state in shopee_orders_raw whatever happened to their
pushes: delivered, lost (in the lost-push queue), never sent, or sent while the gateway
was down.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from service.sandbox.plan import Ledger
from tests.e2e import Stack
from tests.recover_helpers import (
    lost_pending,
    newest_states,
    recovered_records,
    run_recover,
    runs,
    sandbox_post,
    wait_for_states,
)

pytestmark = pytest.mark.integration

SHOPS = list(range(710001, 710007))


@pytest.fixture
async def stack(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Stack]:
    s = Stack(kafka_bootstrap, database_url)
    try:
        await s.start()
        await s.add_shops(SHOPS)
        yield s
    finally:
        s.stop()


async def test_300_orders_over_6_shops_end_in_shopees_state_after_one_recover(stack: Stack) -> None:
    common = {"shops": 6, "orders": 100, "shop_id_base": SHOPS[0], "time_scale": 3000.0}
    ledgers: list[Ledger] = [
        await stack.push(**common, order_sn_prefix="A", seed=1, lost_fraction=0.15, silent_fraction=0.15)
    ]
    # a stretch with the gateway stopped: every push fails its retries and is lost
    stack.ingest.stop()
    down = await stack.push(**common, order_sn_prefix="B", seed=2)
    assert down.summary()["lost"] == len(down.entries)
    ledgers.append(down)
    stack.ingest = await stack.start_ingest()
    ledgers.append(await stack.push(**common, order_sn_prefix="C", seed=3, lost_fraction=0.1, silent_fraction=0.2))
    # and orders that change at Shopee with no push at all
    expected = newest_states(ledgers)
    changed = sorted(k for k in expected if k[1].startswith("A"))[:20]
    now = int(time.time())
    await sandbox_post(
        stack,
        "/sandbox/orders",
        {
            "orders": [
                {"shop_id": int(s), "order_sn": sn, "order_status": "COMPLETED", "update_time": now - 600}
                for s, sn in changed
            ]
        },
    )
    expected.update({k: "COMPLETED" for k in changed})
    assert len(expected) == 300
    assert await lost_pending(stack) > 100

    code, output = await run_recover(stack)
    assert code == 0, output[-3000:]
    assert await lost_pending(stack) == 0
    await wait_for_states(stack.database_url, expected)

    before = len(await recovered_records(stack))
    code, output = await run_recover(stack)
    assert code == 0, output[-3000:]
    assert len(await recovered_records(stack)) == before
    second = (await runs(stack.database_url))[-2:]
    assert [(r["kind"], r["status"], r["produced"]) for r in second] == [("lost_push", "ok", 0), ("reconcile", "ok", 0)]
