"""Fault tests of the ingest side: the broker SIGKILLed under load, the ingest SIGKILLed
while it relays its outbox. The whole pipeline runs as real processes (tests/e2e.py), as
in test_faults.py, and docs/contract.md#guarantees is checked with `check_ledger`.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import httpx
import pytest

from service.ingest.outbox import RELAY_BATCH
from tests.conftest import PrivateBroker, read_topic
from tests.e2e import (
    CALLBACK_PATH,
    Stack,
    assert_all_acknowledged_first_time,
    merged,
    outbox_depth,
    scalar,
    start_stack,
)
from tests.ledger import check_ledger
from tests.percentile import percentile
from tests.waiting import until

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)


class TimedTransport(httpx.AsyncBaseTransport):
    """Records how long each push took to be answered (status line and headers received)."""

    def __init__(self, max_connections: int) -> None:
        self._inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=max_connections))
        self.seconds: list[float] = []
        self.sent_at: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.monotonic()
        response = await self._inner.handle_async_request(request)
        if request.url.path == CALLBACK_PATH:
            self.seconds.append(time.monotonic() - started)
            self.sent_at.append(started)
        return response

    def slow(self, over: float, since: float) -> list[tuple[float, float]]:
        """(sent how long after `since`, answered in) of the answers that took over `over` s."""
        return [(round(t - since, 2), round(s, 2)) for t, s in zip(self.sent_at, self.seconds, strict=True) if s > over]

    async def aclose(self) -> None:
        await self._inner.aclose()


def answer_stats(seconds: list[float]) -> str:
    return (
        f"{len(seconds)} answers, p50 {percentile(seconds, 50):.3f}s, p99 {percentile(seconds, 99):.3f}s, "
        f"max {max(seconds, default=0.0):.3f}s"
    )


# -- Kafka ----------------------------------------------------------------------------------


async def test_broker_killed_under_load_every_push_is_answered_2xx_in_time_and_ends_up_as_a_row(
    private_broker: PrivateBroker, database_url: str, stacks: list[Stack]
) -> None:
    stack = await start_stack(stacks, private_broker.bootstrap, database_url)
    shops = list(range(871000, 871030))
    await stack.add_shops(shops)
    transport = TimedTransport(max_connections=32)
    lags: list[float] = []
    lag_watch = asyncio.create_task(watch_loop_lag(lags))
    async with httpx.AsyncClient(transport=transport) as client:
        load = dict(client=client, shops=len(shops), shop_id_base=shops[0], concurrency=32, duplicates=0.05)
        during = asyncio.create_task(stack.push(**load, orders=1000, order_sn_prefix="K"))
        await until(lambda: _answered(transport, 600), 60, "600 pushes answered before the kill")
        private_broker.kill()
        killed_at = time.monotonic()
        first = await during
        outage_load = time.monotonic() - killed_at
        depth = await outbox_depth(database_url)
        assert depth > 0, "pushes after the kill must have gone to the outbox"
        # the broker comes back while a second load is being answered
        restarting = time.monotonic()
        restart = asyncio.create_task(asyncio.to_thread(private_broker.start, keep_data=True))
        second = await stack.push(**load, orders=300, order_sn_prefix="L")
        await until(lambda: _outbox_empty(database_url), 90, "the outbox to drain")
        drained = time.monotonic() - restarting
        await restart
    lag_watch.cancel()

    assert len(first.entries) >= 2500
    # every push answered 2xx at its first attempt, through the kill; how fast is the ingest
    # benchmark's business (bench/), the answer times are only logged here
    assert_all_acknowledged_first_time(merged(first, second))
    within_budget, handled = await stack.handled_within(2.0)
    report = await check_ledger(
        merged(first, second), database_url, bootstrap=private_broker.bootstrap, dlq_topic=stack.dlq, wait_seconds=60
    )
    assert report.rows == report.expected and report.dead_lettered == 0
    assert stack.consumer.alive() and stack.ingest.alive()
    log.info(
        f"broker kill: {len(first.entries) + len(second.entries)} pushes, {answer_stats(transport.seconds)}; "
        f"the first load ({len(first.entries)} pushes) ended {outage_load:.1f}s after the kill with {depth} outbox rows; "
        f"empty {drained:.1f}s after the broker restart began ({restarting - killed_at:.1f}s after the kill); "
        f"{report.rows} rows; answers over 2 s (sent s after the kill, took s): {transport.slow(2.0, killed_at)}; "
        f"the ingest handled {handled - within_budget} over 2 s; this process's event loop lagged up to "
        f"{max(lags, default=0.0):.2f}s"
    )


async def watch_loop_lag(lags: list[float]) -> None:
    """How late this process's event loop wakes up: its own delays inflate the answer times measured here."""
    while True:
        started = time.monotonic()
        await asyncio.sleep(0.05)
        lags.append(time.monotonic() - started - 0.05)


async def _answered(transport: TimedTransport, count: int) -> bool:
    return len(transport.seconds) >= count


async def _outbox_empty(database_url: str) -> bool:
    return await outbox_depth(database_url) == 0


WAITING_DELETE = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM gateway_outbox%'
"""


async def test_ingest_killed_while_relaying_the_outbox_loses_nothing_and_duplicates_no_row(
    private_broker: PrivateBroker, database_url: str, stacks: list[Stack]
) -> None:
    stack = await start_stack(stacks, private_broker.bootstrap, database_url)
    shops = list(range(872000, 872020))
    await stack.add_shops(shops)
    await asyncio.to_thread(private_broker.stop)
    ledger = await stack.push(shops=len(shops), shop_id_base=shops[0], orders=800, concurrency=32, duplicates=0.1)
    assert_all_acknowledged_first_time(ledger)
    depth = await outbox_depth(database_url)
    assert depth == len(ledger.entries), "every push answered during the outage is one outbox row"

    stack.ingest.kill()
    await asyncio.to_thread(private_broker.start, keep_data=True)
    # Hold back the relay's DELETE (SHARE mode lets its SELECT ... FOR UPDATE through but not
    # the DELETE): the next ingest is then killed after Kafka acknowledged its first claim
    # and before that claim was deleted, the window in which a relay sends rows twice.
    blocker = await asyncpg.connect(database_url)
    try:
        held = blocker.transaction()
        await held.start()
        await blocker.execute("LOCK TABLE gateway_outbox IN SHARE MODE")
        relaying = await stack.start_ingest()
        await until(lambda: _positive(database_url, WAITING_DELETE), 30, "the relay to wait on its DELETE")
        relaying.kill()
        await held.rollback()
    finally:
        await blocker.close()
    assert await outbox_depth(database_url) == depth, "a claim Kafka acknowledged but not committed stays"

    # another ingest starts relaying and is killed as soon as its first claim is committed
    interrupted = await stack.start_ingest()
    await until(lambda: _below(database_url, depth), 30, "the relay to move its first claim")
    interrupted.kill()
    left = await outbox_depth(database_url)

    started = time.monotonic()
    last = await stack.start_ingest()
    await until(lambda: _outbox_empty(database_url), 60, "the outbox to drain")
    drained = time.monotonic() - started

    report = await check_ledger(
        ledger, database_url, bootstrap=private_broker.bootstrap, dlq_topic=stack.dlq, wait_seconds=60
    )
    assert report.rows == report.expected and report.dead_lettered == 0
    sent_twice = min(RELAY_BATCH, depth)
    on_topic = await read_topic(private_broker.bootstrap, stack.topic, expect=depth + sent_twice)
    assert len(on_topic) >= depth + sent_twice, "the killed relay's acknowledged claim went to Kafka again"
    assert last.alive() and stack.consumer.alive()
    log.info(
        f"ingest kills: {depth} outbox rows; {left} left after the mid-relay kill; the last relay drained "
        f"them in {drained:.1f}s (start-up included); {len(on_topic)} records on the topic; {report.rows} rows"
    )


async def _positive(database_url: str, query: str) -> bool:
    return await scalar(database_url, query) > 0


async def _below(database_url: str, depth: int) -> bool:
    return await outbox_depth(database_url) < depth
