"""recover under faults: SIGKILL before confirming, two copies at once, Kafka down."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from service.sandbox.config import AUTH_REFRESH_PATH
from tests.conftest import PrivateBroker
from tests.e2e import Stack
from tests.recover_helpers import (
    lost_pending,
    recovered_records,
    run_recover,
    runs,
    sandbox_post,
    start_recover,
    wait_for_states,
)

pytestmark = pytest.mark.integration

SHOP = 730001


async def _stack(bootstrap: str, database_url: str) -> Stack:
    s = Stack(bootstrap, database_url)
    await s.start()
    await s.add_shops([SHOP])
    return s


@pytest.fixture
async def stack(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Stack]:
    s = await _stack(kafka_bootstrap, database_url)
    try:
        yield s
    finally:
        s.stop()


async def lose(stack: Stack, count: int, prefix: str = "K") -> dict[tuple[str, str], str]:
    """`count` orders whose only push is in the lost-push queue; returns their expected states."""
    now = int(time.time())
    pushes = [
        {
            "shop_id": SHOP,
            "code": 3,
            "timestamp": now - 60,
            "data": {"ordersn": f"{prefix}{i:03d}", "status": "READY_TO_SHIP", "update_time": now - 3 * 86400 - 60},
        }
        for i in range(count)
    ]
    await sandbox_post(stack, "/sandbox/lost-pushes", {"pushes": pushes})
    return {(str(SHOP), f"{prefix}{i:03d}"): "READY_TO_SHIP" for i in range(count)}


async def refresh_calls(stack: Stack) -> int:
    return int((await stack.stats())["totals"]["calls_by_path"].get(AUTH_REFRESH_PATH, 0))


async def test_sigkill_between_produce_and_confirm_then_rerun_loses_nothing(stack: Stack) -> None:
    expected = await lose(stack, 40)
    await stack.set_faults(latency_ms=4000)  # every Shopee call, the confirm too, takes 4 s
    proc = start_recover(stack, RECOVER_SHOPEE_TIMEOUT_SECONDS="30", SHOPEE_TIMEOUT_SECONDS="30")
    deadline = time.monotonic() + 60
    while len(await recovered_records(stack, wait_seconds=0.5)) < 40:
        assert time.monotonic() < deadline, proc.output(3000)
    proc.kill()  # the records are durable, the confirm is still waiting on its answer
    assert await lost_pending(stack) == 40

    await stack.set_faults(latency_ms=0)
    code, output = await run_recover(stack)
    assert code == 0, output[-3000:]
    assert await lost_pending(stack) == 0
    await wait_for_states(stack.database_url, expected)


async def test_two_recovers_at_once_never_sweep_the_same_kind_together_and_both_exit_0(stack: Stack) -> None:
    await lose(stack, 5)
    await stack.set_faults(latency_ms=3000)  # long enough sweeps for the two to overlap
    first, second = start_recover(stack, name="first"), start_recover(stack, name="second")
    codes = await asyncio.gather(asyncio.to_thread(first.popen.wait, 120), asyncio.to_thread(second.popen.wait, 120))
    outputs = first.output() + second.output()
    assert codes == [0, 0], outputs[-3000:]
    assert "another recover holds the lock" in outputs
    by_kind: dict[str, list[asyncpg.Record]] = {}
    for run in await runs(stack.database_url):
        by_kind.setdefault(run["kind"], []).append(run)
    assert set(by_kind) == {"lost_push", "reconcile"}
    for kind_runs in by_kind.values():
        assert all(r["finished_at"] is not None for r in kind_runs)
        for earlier, later in itertools.pairwise(kind_runs):
            assert later["started_at"] >= earlier["finished_at"], "two sweeps of one kind overlapped"
    assert await lost_pending(stack) == 0


async def test_a_shop_whose_refresh_token_is_refused_is_reported_and_then_skipped(stack: Stack) -> None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(
            "UPDATE merchant_shopee_config SET refresh_token = 'revoked', access_token_expires_at = now() "
            "WHERE shop_id = $1",
            str(SHOP),
        )
        code, output = await run_recover(stack, LOG_LEVEL="WARNING")
        assert code == 0, output[-3000:]
        assert "refresh_token_rejected" in output
        reconcile = (await runs(stack.database_url))[-1]
        assert (reconcile["status"], reconcile["errors"]) == ("errors", 1)
        assert f"shop {SHOP}: refresh_token_rejected" in reconcile["detail"]
        refreshes = await refresh_calls(stack)
        assert refreshes >= 1

        code, output = await run_recover(stack, LOG_LEVEL="WARNING")
        assert code == 0, output[-3000:]
        assert "re-authorise" in output
        assert await refresh_calls(stack) == refreshes  # not tried again with the same token
        last_error = await conn.fetchval("SELECT last_error FROM recover_checkpoints WHERE shop_id = $1", str(SHOP))
        assert last_error.startswith("refresh_token_rejected")
    finally:
        await conn.close()


@pytest.fixture
async def broker_stack(private_broker: PrivateBroker, database_url: str) -> AsyncIterator[tuple[Stack, PrivateBroker]]:
    s = await _stack(private_broker.bootstrap, database_url)
    try:
        yield s, private_broker
    finally:
        s.stop()


async def test_kafka_down_lost_pushes_go_to_the_outbox_and_are_confirmed(
    broker_stack: tuple[Stack, PrivateBroker],
) -> None:
    stack, broker = broker_stack
    await lose(stack, 12)
    broker.stop()
    code, output = await run_recover(stack, RECOVER_PRODUCE_TIMEOUT_SECONDS="2")
    assert code == 0, output[-3000:]
    conn = await asyncpg.connect(stack.database_url)
    try:
        queued = await conn.fetchval("SELECT count(*) FROM gateway_outbox WHERE topic = $1", stack.topic)
    finally:
        await conn.close()
    assert queued == 12
    assert await lost_pending(stack) == 0


async def test_kafka_down_without_outbox_confirms_nothing(broker_stack: tuple[Stack, PrivateBroker]) -> None:
    stack, broker = broker_stack
    await lose(stack, 12)
    broker.stop()
    code, output = await run_recover(stack, RECOVER_PRODUCE_TIMEOUT_SECONDS="2", INGEST_OUTBOX_ENABLED="false")
    assert code == 1, output[-3000:]
    assert await lost_pending(stack) == 12
    lost_run = (await runs(stack.database_url))[0]
    assert (lost_run["kind"], lost_run["status"]) == ("lost_push", "failed")
