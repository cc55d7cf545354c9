"""Fault tests: the whole pipeline as real processes, broken on purpose, then the ledger check.

Each test runs the sandbox, the ingest and the consumer as subprocesses (tests/e2e.py),
sends pushes with the sandbox's push sender (Shopee's retries, time-scaled), breaks one
part while they flow (SIGKILL of the consumer mid-batch, a rebalance, a Postgres restart,
a misbehaving Shopee; the broker and the ingest are killed in test_faults_kafka.py) and
then asserts docs/contract.md#guarantees with `check_ledger`: every acknowledged push is
its order's newest row, no duplicates, nothing dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import PrivateBroker, read_topic
from tests.e2e import (
    Stack,
    assert_all_acknowledged_first_time,
    merged,
    order_rows,
    outbox_depth,
    start_stack,
)
from tests.ledger import check_ledger
from tests.processes import Process
from tests.waiting import until

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


# -- consumer -------------------------------------------------------------------------------


async def test_consumer_killed_mid_batch_and_restarted_persists_every_order_once(
    kafka_bootstrap: str, database_url: str, stacks: list[Stack]
) -> None:
    stack = await start_stack(stacks, kafka_bootstrap, database_url)
    shops = list(range(873000, 873012))
    await stack.add_shops(shops)
    await stack.set_faults(latency_ms=800)  # slow Shopee: batches are in flight when the kill lands
    load = dict(shops=len(shops), shop_id_base=shops[0], concurrency=32, duplicates=0.1)
    during = asyncio.create_task(stack.push(**load, orders=500, order_sn_prefix="M"))
    await until(lambda: _rows_at_least(database_url, 1), 60, "the first rows")
    stack.consumer.kill()
    written = await order_rows(database_url)
    # pushed after the kill: the run is unfinished when the kill lands, by construction
    ledger = merged(await during, await stack.push(**load, orders=100, order_sn_prefix="N"))
    assert_all_acknowledged_first_time(ledger)
    expected = len(ledger.expected_orders())

    await stack.set_faults(latency_ms=0)
    restarted = await stack.start_consumer(name="consumer-restarted")
    report = await check_ledger(ledger, database_url, bootstrap=kafka_bootstrap, dlq_topic=stack.dlq, wait_seconds=60)
    assert report.rows == report.expected == expected and report.dead_lettered == 0
    assert restarted.alive()
    log.info(f"consumer kill: {written} of {expected} orders written before the kill; {report.rows} rows after")


async def _rows_at_least(database_url: str, count: int) -> bool:
    return await order_rows(database_url) >= count


async def test_second_consumer_joining_and_leaving_while_batches_are_pending_loses_nothing(
    kafka_bootstrap: str, database_url: str, stacks: list[Stack]
) -> None:
    # batches of ~5 orders wait out a 30 s timeout: they are pending when the rebalance comes
    stack = await start_stack(
        stacks, kafka_bootstrap, database_url, partitions=6, BATCH_TIMEOUT_SECONDS="30", LOG_LEVEL="INFO"
    )
    shops = list(range(874000, 874030))
    await stack.add_shops(shops)
    load = dict(shops=len(shops), shop_id_base=shops[0], orders=150, concurrency=32, duplicates=0.1)

    before_join = await stack.push(**load, order_sn_prefix="A")  # ~5 pushes a shop: partial batches
    second = await stack.start_consumer(name="consumer2")
    await until(lambda: _logged(second, "partitions assigned"), 60, "consumer2 to get partitions")
    assert await order_rows(database_url) < len(before_join.expected_orders()), "batches pending at the rebalance"

    while_two = await stack.push(**load, order_sn_prefix="B")
    await asyncio.sleep(1)  # consumer2 fetches partial batches of its own (30 s timeout) before it leaves
    assert await asyncio.to_thread(second.stop) == 0, second.output()[-2000:]

    after_leave = await stack.push(**load, order_sn_prefix="C")
    ledger = merged(before_join, while_two, after_leave)
    assert_all_acknowledged_first_time(ledger)
    report = await check_ledger(ledger, database_url, bootstrap=kafka_bootstrap, dlq_topic=stack.dlq, wait_seconds=120)
    assert report.rows == report.expected and report.dead_lettered == 0
    assert stack.consumer.alive()
    revoked = stack.consumer.output().count("partitions revoked")
    assert revoked >= 1, "consumer1 gave partitions up when consumer2 joined"
    log.info(f"rebalance: {report.rows} rows; consumer1 revoked partitions {revoked} time(s)")


async def _logged(proc: Process, text: str) -> bool:
    return text in proc.output()


# -- Postgres -------------------------------------------------------------------------------


def pg_ctl(pg_admin_url: str, *args: str) -> None:
    """pg_ctl on the test cluster of scripts/pg.sh (as its `postgres` owner when we are root)."""
    port = urlparse(pg_admin_url).port
    folder = Path(os.environ.get("TMPDIR") or "/tmp") / f"gateway-pg-{port}"
    candidates = [Path("/usr/lib/postgresql/15/bin/pg_ctl"), *sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))]
    binary = next((str(c) for c in candidates if c.exists()), None) or shutil.which("pg_ctl")
    assert binary is not None, "pg_ctl not found"
    command = [binary, "-D", str(folder / "data"), *args]
    if os.getuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=90)


def pg_running(pg_admin_url: str) -> bool:
    try:
        pg_ctl(pg_admin_url, "status")
    except subprocess.CalledProcessError:
        return False
    return True


async def test_postgres_crashing_while_the_consumer_writes_loses_nothing_and_the_outbox_still_works(
    private_broker: PrivateBroker, database_url: str, pg_admin_url: str, stacks: list[Stack]
) -> None:
    stack = await start_stack(stacks, private_broker.bootstrap, database_url)
    shops = list(range(875000, 875020))
    await stack.add_shops(shops)
    load = dict(shops=len(shops), shop_id_base=shops[0], concurrency=32, duplicates=0.1)
    await stack.set_faults(latency_ms=300)  # the consumer's writes spread over the outage
    during = asyncio.create_task(stack.push(**load, orders=600, order_sn_prefix="P"))
    await until(lambda: _rows_at_least(database_url, 20), 30, "the first rows")
    server_log = str(Path(os.environ.get("TMPDIR") or "/tmp") / f"gateway-pg-{urlparse(pg_admin_url).port}/server.log")
    try:
        await asyncio.to_thread(pg_ctl, pg_admin_url, "-m", "immediate", "-w", "stop")  # like a crash
        # pushed while Postgres is down (Kafka takes them): these orders are written after the
        # crash by construction, so the consumer's writes span it
        during_crash = await stack.push(**load, orders=100, order_sn_prefix="C")
    finally:
        if not await asyncio.to_thread(pg_running, pg_admin_url):
            await asyncio.to_thread(pg_ctl, pg_admin_url, "-l", server_log, "-w", "-t", "60", "start")
    written_before = await order_rows(database_url)
    first = merged(await during, during_crash)
    await stack.set_faults(latency_ms=0)

    # the ingest's outbox pool lived through the crash too: with Kafka down it must take pushes
    await asyncio.to_thread(private_broker.stop)
    second = await stack.push(**load, orders=200, order_sn_prefix="Q")
    assert await outbox_depth(database_url) > 0
    await asyncio.to_thread(private_broker.start, keep_data=True)

    ledger = merged(first, second)
    assert_all_acknowledged_first_time(ledger)
    report = await check_ledger(
        ledger, database_url, bootstrap=private_broker.bootstrap, dlq_topic=stack.dlq, wait_seconds=60
    )
    assert report.rows == report.expected and report.dead_lettered == 0
    assert stack.consumer.alive() and stack.ingest.alive()
    log.info(f"postgres crash: {written_before} of {report.expected} orders written before it; {report.rows} rows")


# -- Shopee ---------------------------------------------------------------------------------


async def test_shopee_failing_and_rate_limiting_for_a_while_dead_letters_nothing(
    kafka_bootstrap: str, database_url: str, stacks: list[Stack]
) -> None:
    stack = await start_stack(stacks, kafka_bootstrap, database_url)
    shops = list(range(876000, 876020))
    await stack.add_shops(shops)
    await stack.set_faults(error_rate=0.3, unavailable_rate=0.1, rate_limit_per_minute=3)
    faulty_since = time.monotonic()
    ledger = await stack.push(shops=len(shops), shop_id_base=shops[0], orders=500, concurrency=32, duplicates=0.1)
    assert_all_acknowledged_first_time(ledger)
    await until(lambda: _saw_every_fault(stack), 30, "Shopee to answer 500, 503 and 429")
    await asyncio.sleep(max(0.0, 8 - (time.monotonic() - faulty_since)))
    await stack.set_faults(error_rate=0, unavailable_rate=0, rate_limit_per_minute=0)
    healed_at = time.monotonic()
    errors = (await stack.stats())["totals"]["errors"]

    report = await check_ledger(ledger, database_url, bootstrap=kafka_bootstrap, dlq_topic=stack.dlq, wait_seconds=60)
    assert report.rows == report.expected and report.dead_lettered == 0
    assert await read_topic(kafka_bootstrap, stack.dlq, wait_seconds=2) == [], "nothing may be dead-lettered"
    assert stack.consumer.alive()
    log.info(
        f"shopee faults: {errors} during {healed_at - faulty_since:.1f}s; all {report.rows} orders "
        f"{time.monotonic() - healed_at:.1f}s after healing"
    )


async def _saw_every_fault(stack: Stack) -> bool:
    errors = (await stack.stats())["totals"]["errors"]
    return all(errors.get(kind, 0) > 0 for kind in ("error_server", "http_503", "error_too_many_request"))
