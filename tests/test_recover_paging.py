"""Paging: over 100 lost messages, over 100 changed orders in one window, a look-back over 15 days."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.e2e import Stack
from tests.recover_helpers import lost_pending, run_recover, runs, sandbox_post, wait_for_states

pytestmark = pytest.mark.integration

LOST_SHOP, BUSY_SHOP, OLD_SHOP = 720001, 720002, 720003
DAY = 86400


@pytest.fixture
async def stack(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Stack]:
    s = Stack(kafka_bootstrap, database_url)
    try:
        await s.start()
        await s.add_shops([LOST_SHOP, BUSY_SHOP, OLD_SHOP])
        yield s
    finally:
        s.stop()


async def test_recover_pages_lost_messages_order_lists_and_windows(stack: Stack) -> None:
    now = int(time.time())
    lost = [
        {"shop_id": LOST_SHOP, "code": 3, "timestamp": now - 60, "data": {"ordersn": f"L{i:04d}", "status": "SHIPPED"}}
        for i in range(230)
    ]
    await sandbox_post(stack, "/sandbox/lost-pushes", {"pushes": lost})
    # the lost-push shop's orders exist at Shopee too, updated before the look-back
    orders = [
        {"shop_id": LOST_SHOP, "order_sn": f"L{i:04d}", "order_status": "SHIPPED", "update_time": now - 30 * DAY}
        for i in range(230)
    ]
    orders += [
        {"shop_id": BUSY_SHOP, "order_sn": f"B{i:04d}", "order_status": "PROCESSED", "update_time": now - DAY + i}
        for i in range(150)
    ]
    orders += [
        {"shop_id": OLD_SHOP, "order_sn": f"O{i:04d}", "order_status": "COMPLETED", "update_time": now - i * 2 * DAY}
        for i in range(1, 11)
    ]
    await sandbox_post(stack, "/sandbox/orders", {"orders": orders})

    code, output = await run_recover(stack, RECOVER_LOOKBACK_SECONDS=str(21 * DAY))
    assert code == 0, output[-3000:]

    assert await lost_pending(stack) == 0
    expected = {(str(o["shop_id"]), str(o["order_sn"])): str(o["order_status"]) for o in orders}
    await wait_for_states(stack.database_url, expected)
    lost_run, reconcile_run = await runs(stack.database_url)
    assert (lost_run["seen"], lost_run["produced"]) == (230, 230)
    assert "3 pages" in lost_run["detail"]
    # every order in the 21 days (150 busy in one window, 10 old over two windows) was listed
    assert (reconcile_run["status"], reconcile_run["seen"]) == ("ok", 160)
