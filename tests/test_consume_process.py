"""`python -m service consume` as real processes: SIGKILL and restart, two replicas refreshing one shop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import orjson
import pytest

from service.settings import Settings
from tests.consume_helpers import (
    committed_offsets,
    dead_letters,
    fetch_rows,
    fresh_settings,
    order,
    produce,
    settings_env,
    wait_for_rows,
)
from tests.processes import Process, service_argv
from tests.sandbox_server import SandboxServer
from tests.waiting import until

pytestmark = pytest.mark.integration


def owns_one_partition(process: Process) -> bool:
    """The replica's latest assignment (from its JSON log) is exactly one partition."""
    latest: list[str] | None = None
    for line in process.output().splitlines():
        if '"partitions assigned"' in line:
            latest = orjson.loads(line)["partitions"]
        elif '"partitions revoked"' in line:
            latest = None
    return latest is not None and len(latest) == 1


@pytest.fixture
def processes() -> Iterator[Callable[[Settings], Process]]:
    started: list[Process] = []

    def start(settings: Settings) -> Process:
        started.append(Process(f"consumer-{len(started)}", service_argv("consume"), settings_env(settings)))
        return started[-1]

    yield start
    for p in started:
        p.kill()
        p.stop()


async def test_consumer_killed_mid_run_and_restarted_persists_every_record_once(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    database_url: str,
    sandbox: SandboxServer,
    processes: Callable[[Settings], Process],
) -> None:
    settings = await fresh_settings(
        kafka_bootstrap, new_topic, database_url, sandbox, partitions=3, batch_max_size=5, batch_timeout_seconds=0.3
    )
    sandbox.set_faults(latency_ms=150)  # slow Shopee: batches are in flight when the kill lands
    shops = [str(8000 + i) for i in range(6)]
    for shop in shops:
        await sandbox.add_shop(database_url, shop)
    before = [order(shop, f"{shop}-K{i:02d}") for i in range(15) for shop in shops]
    placed = dict(
        zip(await produce(kafka_bootstrap, settings.kafka_topic_marketplace_orders, before), before, strict=True)
    )

    first = processes(settings)
    group, topic = settings.kafka_consumer_group, settings.kafka_topic_marketplace_orders

    async def some_committed() -> bool:
        return sum((await committed_offsets(kafka_bootstrap, group, topic)).values()) >= 10

    # killed once some work is committed (by construction, not by a slow machine)
    await until(some_committed, within=60, what="the first process to commit some offsets")
    first.kill()
    calls_before_kill = len(sandbox.calls)
    committed = await committed_offsets(kafka_bootstrap, group, topic)
    done = {r.order_sn for (partition, offset), r in placed.items() if offset < committed.get(partition, 0)}
    # the rest is produced after the kill: the run is unfinished when it lands, by construction
    after = [order(shop, f"{shop}-K{i:02d}") for i in range(15, 30) for shop in shops]
    await produce(kafka_bootstrap, settings.kafka_topic_marketplace_orders, after)

    sandbox.set_faults(latency_ms=0)
    second = processes(settings)
    records = before + after
    rows = await wait_for_rows(database_url, len(records), within=90)
    assert second.alive()
    assert sorted((r["shop_id"], r["order_sn"]) for r in rows) == sorted((r.shop_id, r.order_sn) for r in records)
    # once: the restarted process resumes at the committed offsets; what the first one
    # committed is never asked of Shopee again (only uncommitted work is redone)
    asked_again = {sn for c in sandbox.calls[calls_before_kill:] for sn in c.order_sns} & done
    assert done and not asked_again, f"{len(done)} committed before the kill, asked again: {sorted(asked_again)[:5]}"

    assert await asyncio.to_thread(second.stop) == 0
    assert second.output().count("consumer stopped") == 1


async def test_two_processes_refreshing_the_same_shop_at_once_keep_it_working(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    database_url: str,
    sandbox: SandboxServer,
    processes: Callable[[Settings], Process],
) -> None:
    settings = await fresh_settings(
        kafka_bootstrap, new_topic, database_url, sandbox, partitions=2, batch_timeout_seconds=1.0
    )
    await sandbox.add_shop(database_url, "9001", expired=True)
    # the same shop on both partitions, so both replicas hold a batch of it and both want a refresh
    first = processes(settings)
    second = processes(settings)
    await until(
        lambda: owns_one_partition(first) and owns_one_partition(second),
        within=90,
        what="both replicas to own one partition each",
    )
    for partition in (0, 1):
        await produce(
            kafka_bootstrap,
            settings.kafka_topic_marketplace_orders,
            [order("9001", f"R{partition}-{i}") for i in range(10)],
            partition=partition,
        )
    await wait_for_rows(database_url, 20, within=30)
    assert first.alive() and second.alive()
    assert len(sandbox.refresh_calls()) == 1
    stored = await fetch_rows(database_url, "SELECT access_token, refresh_token FROM merchant_shopee_config")
    current = sandbox.state.tokens.current(9001)
    assert (stored[0]["access_token"], stored[0]["refresh_token"]) == (current.access_token, current.refresh_token)
    assert await dead_letters(kafka_bootstrap, settings.kafka_topic_dead_letter, wait=1) == []
    calls_by_partition = {c.order_sns[0].split("-")[0] for c in sandbox.order_calls("9001")}
    assert calls_by_partition == {"R0", "R1"}
