"""Guarantees held through the production wiring: a consumer built from Settings by
main.consume, against the real broker, Postgres and the sandbox served over HTTP."""

from __future__ import annotations

import itertools

import pytest

from service.settings import Settings
from tests.conftest import TopicFactory
from tests.consume_helpers import fresh_settings, order, produce, running_consumer, wait_for_rows
from tests.fakes import ScaledClock
from tests.sandbox_server import SandboxServer

pytestmark = pytest.mark.integration

#: the consumer's minute passes in 6 real seconds
SPEED = 10.0
#: scaled seconds an HTTP round trip may shift one call against another (1.5 real seconds)
JITTER = 15.0


def most_in_window(times: list[float], window: float) -> int:
    return max((sum(1 for t in times if start <= t < start + window) for start in times), default=0)


async def test_calls_per_shop_stay_within_the_limit_per_rolling_minute_of_a_consumer_built_from_settings(
    kafka_bootstrap: str, new_topic: TopicFactory, database_url: str, sandbox: SandboxServer
) -> None:
    limit = 2
    settings = await fresh_settings(
        kafka_bootstrap,
        new_topic,
        database_url,
        sandbox,
        batch_max_size=1,
        batch_timeout_seconds=1.0,
        shop_rate_limit_per_minute=limit,
    )
    clock = ScaledClock(SPEED)
    sandbox.clock = clock  # calls are logged on the consumer's time
    await sandbox.add_shop(database_url, "3001")
    records = [order("3001", f"T{i}") for i in range(6)]
    await produce(kafka_bootstrap, settings.kafka_topic_marketplace_orders, records)
    async with running_consumer(settings, clock=clock, sleep=clock.sleep):
        await wait_for_rows(database_url, len(records), within=120)
    times = sorted(c.at for c in sandbox.order_calls("3001"))
    assert len(times) == len(records), "one call per record (batches of one): nothing dropped"
    # Calls `limit` apart are a minute apart (a 30 s window would put them 30 s apart);
    # JITTER allows for the HTTP round trip between the throttle and the sandbox's log.
    assert most_in_window(times, 60 - JITTER) <= limit, [round(t - times[0], 1) for t in times]
    assert times[-1] - times[0] >= 2 * 60 - JITTER, "6 calls at 2 a minute span two minutes"


async def test_one_batch_per_shop_is_in_flight_at_a_time_in_offset_order(
    kafka_bootstrap: str, new_topic: TopicFactory, database_url: str, sandbox: SandboxServer
) -> None:
    settings: Settings = await fresh_settings(
        kafka_bootstrap,
        new_topic,
        database_url,
        sandbox,
        batch_max_size=5,
        batch_timeout_seconds=0.2,
        max_concurrency=10,
    )
    sandbox.set_faults(latency_ms=300)  # each call is in flight long enough for another to overlap it
    await sandbox.add_shop(database_url, "4101")
    await sandbox.add_shop(database_url, "4102")
    records = [order(shop, f"{shop}-{i:02d}") for i in range(20) for shop in ("4101", "4102")]
    await produce(kafka_bootstrap, settings.kafka_topic_marketplace_orders, records, partition=0)
    async with running_consumer(settings):
        await wait_for_rows(database_url, len(records), within=120)
    spans = [(c.at, c.answered_at) for shop in ("4101", "4102") for c in sandbox.order_calls(shop)]
    assert all(end is not None for _, end in spans)
    for shop in ("4101", "4102"):
        calls = sorted(sandbox.order_calls(shop), key=lambda c: c.at)
        assert len(calls) >= 4, "the shop's records came in several batches"
        for before, after in itertools.pairwise(calls):
            assert before.answered_at is not None and before.answered_at <= after.at, "two batches of one shop at once"
        assert [sn for c in calls for sn in c.order_sns] == [f"{shop}-{i:02d}" for i in range(20)], "offset order"
    # the two shops did overlap: one batch per shop, not one batch at a time
    a, b = (sorted(sandbox.order_calls(s), key=lambda c: c.at) for s in ("4101", "4102"))
    assert any(x.at < (y.answered_at or 0) and y.at < (x.answered_at or 0) for x in a for y in b)
