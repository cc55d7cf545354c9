"""Fault tests on a production-shaped cluster (tests/cluster.py): brokers SIGKILLed under load.

Three brokers, topics with replication factor 3 and min.insync.replicas 2, as Confluent
Cloud runs them. The whole pipeline runs as real processes (tests/e2e.py). One broker
dying must not show anywhere but in the logs: every push is answered 2xx at its first
attempt (within Shopee's 3 s, the push sender's timeout), Kafka acknowledges every one of
them (the ingest's outbox never takes a push), and the consumer goes on. Two brokers dying
leaves too few in-sync replicas to acknowledge anything: the outbox takes the pushes,
still 2xx at the first attempt, and relays them once the brokers are back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.cluster import Cluster, start_cluster
from tests.consume_helpers import committed_offsets, end_offsets
from tests.e2e import Stack, assert_all_acknowledged_first_time, order_rows, outbox_depth, start_stack
from tests.ledger import check_ledger
from tests.waiting import until

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

FORWARDED = 'gateway_ingest_requests_total{outcome="forwarded"}'
VIA_KAFKA = 'gateway_ingest_produce_seconds_count{sink="kafka"}'
VIA_OUTBOX = 'gateway_ingest_produce_seconds_count{sink="outbox"}'
RELAYED = "gateway_outbox_relayed_total"
BUDGET = "2.5"  # seconds to answer a push; Kafka gets this minus the 0.5 s outbox reserve
KAFKA_WITHIN_1S = 'gateway_ingest_produce_seconds_bucket{le="1.0",sink="kafka"}'


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the tests of this file (its JVMs take a while to start)."""
    with start_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


async def start_loaded_stack(stacks: list[Stack], cluster: Cluster, database_url: str, shop_base: int) -> Stack:
    # Kafka gets 2.0 s of a 2.5 s answer budget here, not the default 1.5 s of 2 s: the
    # cluster moves leaders about 0.6 s after a kill, but on a loaded 2-core CI machine
    # the slowest acknowledgement after it has reached 1.5 s (a CI run sent 177 pushes to
    # the outbox). The README gives operators the same advice for slow-failover clusters.
    stack = await start_stack(
        stacks, cluster.bootstrap, database_url, partitions=6, replicas=3, INGEST_RESPONSE_BUDGET_SECONDS=BUDGET
    )
    await stack.add_shops(list(range(shop_base, shop_base + 30)))
    return stack


def load(shop_base: int, orders: int, prefix: str) -> dict[str, object]:
    return dict(
        shops=30, shop_id_base=shop_base, orders=orders, concurrency=32, duplicates=0.05, order_sn_prefix=prefix
    )


async def forwarded(stack: Stack) -> int:
    return int((await stack.ingest_metrics()).get(FORWARDED, 0))


async def committed_to_the_end(cluster: Cluster, stack: Stack) -> bool:
    """The consumer group has committed every record of the topic."""
    ends = await end_offsets(cluster.bootstrap, stack.topic, stack.partitions)
    return await committed_offsets(cluster.bootstrap, stack.group, stack.topic) == ends


async def test_one_broker_killed_under_load_every_push_is_acknowledged_by_kafka_first_time_and_is_one_row(
    cluster: Cluster, database_url: str, stacks: list[Stack]
) -> None:
    stack = await start_loaded_stack(stacks, cluster, database_url, 881000)
    during = asyncio.create_task(stack.push(**load(881000, 600, "K")))
    await until(lambda: _forwarded_at_least(stack, 200), 60, "200 pushes forwarded before the kill")
    leaders = await cluster.leaders(stack.topic)
    victim, led = Counter(leaders.values()).most_common(1)[0]
    cluster.kill(victim)
    try:
        rows_at_kill, forwarded_at_kill = await order_rows(database_url), await forwarded(stack)
        assert not during.done(), "the kill lands while pushes flow"
        ledger = await during
        assert_all_acknowledged_first_time(ledger)
        samples = await stack.ingest_metrics()
        assert samples.get(VIA_OUTBOX, 0) == 0 and samples.get(RELAYED, 0) == 0, "no push went through the outbox"
        # the consumer goes on with a broker down
        report = await check_ledger(ledger, database_url, bootstrap=cluster.bootstrap, dlq_topic=stack.dlq)
        await until(lambda: committed_to_the_end(cluster, stack), 60, "the consumer to commit every record")
        new_leaders = await cluster.leaders(stack.topic)
    finally:
        await asyncio.to_thread(cluster.start, victim)

    assert samples[VIA_KAFKA] == samples[FORWARDED] == len(ledger.entries), "Kafka acknowledged every push"
    within, handled = await stack.handled_within(3.0)
    assert within == handled, "the ingest answered every push within Shopee's 3 s"
    assert await outbox_depth(database_url) == 0
    assert report.rows == report.expected and report.dead_lettered == 0
    assert victim not in new_leaders.values(), "the dead broker's partitions have new leaders"
    assert stack.consumer.alive() and stack.ingest.alive()
    log.info(
        f"one broker killed: broker {victim} led {led} of {len(leaders)} partitions; {len(ledger.entries)} pushes, "
        f"{samples[FORWARDED] - forwarded_at_kill:.0f} forwarded after the kill; {rows_at_kill} rows at the kill, "
        f"{report.rows} after; leaders after: {new_leaders}; Kafka acknowledged "
        f"{samples[VIA_KAFKA] - samples[KAFKA_WITHIN_1S]:.0f} pushes in over 1 s (the ingest gives it 2.0 s here)"
    )


async def test_two_brokers_killed_the_outbox_takes_every_push_and_relays_it_once_they_are_back(
    cluster: Cluster, database_url: str, stacks: list[Stack]
) -> None:
    stack = await start_loaded_stack(stacks, cluster, database_url, 882000)
    during = asyncio.create_task(stack.push(**load(882000, 300, "T")))
    await until(lambda: _forwarded_at_least(stack, 100), 60, "100 pushes forwarded before the kill")
    victims = (1, 2)
    cluster.kill(*victims)
    try:
        assert not during.done(), "the kill lands while pushes flow"
        ledger = await during
        depth = await outbox_depth(database_url)
        via_outbox = (await stack.ingest_metrics()).get(VIA_OUTBOX, 0)
    finally:
        await asyncio.to_thread(cluster.start, *victims)
    assert_all_acknowledged_first_time(ledger)
    assert via_outbox > 0 and depth > 0, "the pushes during the outage went to the outbox"
    await until(lambda: _outbox_empty(database_url), 90, "the outbox to drain")
    report = await check_ledger(ledger, database_url, bootstrap=cluster.bootstrap, dlq_topic=stack.dlq)
    await until(lambda: committed_to_the_end(cluster, stack), 60, "the consumer to commit every record")

    samples = await stack.ingest_metrics()
    assert samples[RELAYED] >= depth, "the outbox relayed its rows to Kafka"
    assert report.rows == report.expected and report.dead_lettered == 0
    assert stack.consumer.alive() and stack.ingest.alive()
    log.info(
        f"two brokers killed: {len(ledger.entries)} pushes, {via_outbox:.0f} through the outbox ({depth} rows "
        f"when the load ended), {samples[RELAYED]:.0f} relayed; {report.rows} rows"
    )


async def _forwarded_at_least(stack: Stack, count: int) -> bool:
    return await forwarded(stack) >= count


async def _outbox_empty(database_url: str) -> bool:
    return await outbox_depth(database_url) == 0
