"""Java clients on the gateway's topics: compressed batches, hand-made bad records,
partitioning and a Java consumer in our group (tests/java/Interop.java, kafka-clients
from the broker's own jars, run with the `java` source launcher)."""

from __future__ import annotations

import asyncio
import subprocess
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from tests.conftest import ROOT
from tests.consume_helpers import dead_letters
from tests.e2e import Stack
from tests.processes import Process, service_argv
from tests.pushes import real_push
from tests.schemas import assert_valid_dead_letter
from tests.test_e2e import post, rows, wait_rows

pytestmark = pytest.mark.integration


JAVA = ["java", "-cp", str(ROOT / ".cache/kafka/libs/*"), str(ROOT / "tests/java/Interop.java")]


def java(*args: str) -> str:
    done = subprocess.run([*JAVA, *args], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str, pg_admin_url: str) -> AsyncIterator[Stack]:
    """One stack for the module (CI time): its own topic of 12 partitions, group and database."""
    import uuid

    import asyncpg

    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    s = Stack(kafka_bootstrap, f"{pg_admin_url.rpartition('/')[0]}/{name}", partitions=12)
    await s.start()
    try:
        yield s
    finally:
        s.stop()
        conn = await asyncpg.connect(pg_admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def tell_sandbox(stack: Stack, shop: int, order_sns: list[str]) -> None:
    """Shopee knows the orders its pushes are about; so must the sandbox."""
    async with httpx.AsyncClient(timeout=10) as client:
        for i, sn in enumerate(order_sns):
            order = {"shop_id": shop, "order_sn": sn, "order_status": "READY_TO_SHIP", "update_time": 1_735_689_600 + i}
            (await client.post(stack.sandbox_url + "/sandbox/orders", json=order)).raise_for_status()


@pytest.mark.parametrize("codec", ["gzip", "lz4", "snappy", "zstd"])
async def test_every_record_of_a_compressed_java_batch_becomes_a_row(stack: Stack, codec: str) -> None:
    shop = 840000 + ["gzip", "lz4", "snappy", "zstd"].index(codec)
    await stack.add_shops([shop])
    await tell_sandbox(stack, shop, [f"JAVA{codec.upper()}{i:03d}" for i in range(20)])
    assert java("produce", stack.bootstrap, stack.topic, codec, str(shop), "0", "20") == "produced 20"
    await wait_rows(stack.database_url, shop, 20, 60)
    assert {r["order_sn"] for r in await rows(stack.database_url, shop)} == {
        f"JAVA{codec.upper()}{i:03d}" for i in range(20)
    }


async def test_an_undecodable_record_becomes_a_dead_letter_and_the_partition_moves_on(stack: Stack) -> None:
    shop = 840010
    await stack.add_shops([shop])
    await tell_sandbox(stack, shop, ["JAVAGZIP000"])
    assert java("raw", stack.bootstrap, stack.topic, f"shop-{shop}", "{not json at all") == "produced 1"
    assert java("produce", stack.bootstrap, stack.topic, "gzip", str(shop), "0", "1") == "produced 1"
    await wait_rows(stack.database_url, shop, 1, 60)  # the next record on the same partition
    letters = [d for d in await dead_letters(stack.bootstrap, stack.dlq, wait=10) if d.shop_id == str(shop)]
    assert [(d.reason, d.raw_body()) for d in letters] == [("undecodable_record", b"{not json at all")]
    assert_valid_dead_letter(orjson.loads(letters[0].encode()))


async def test_java_puts_every_key_our_ingest_produced_on_the_same_partition(stack: Stack) -> None:
    shops = list(range(850000, 850040))
    await stack.add_shops(shops)
    assert await post(stack, [real_push(shop, f"PART{shop}") for shop in shops]) == [200] * len(shops)
    await wait_rows(stack.database_url, shops[-1], 1, 60)
    checked, differ = java("partitions", stack.bootstrap, stack.topic).split()[1::2]
    assert int(checked) >= len(shops) and int(differ) == 0


@pytest.mark.parametrize("settings", [[], ["group.protocol=consumer"]], ids=["defaults", "consumer-protocol"])
async def test_a_java_consumer_joins_our_consumer_group(stack: Stack, settings: list[str]) -> None:
    line = java("join", stack.bootstrap, stack.topic, stack.group, "0", *settings)
    assert line.startswith("final ") and int(line.split()[1]) > 0, line
    assert stack.consumer.alive(), stack.consumer.output()[-3000:]
    shop = 840020 + len(settings)
    await stack.add_shops([shop])
    assert await post(stack, [real_push(shop, f"AFTERJAVA{len(settings)}")]) == [200]
    await wait_rows(stack.database_url, shop, 1, 60)


async def test_our_consumer_joins_a_group_a_java_consumer_at_its_defaults_holds(stack: Stack) -> None:
    group = f"{stack.group}-java-first"
    java_consumer = await asyncio.create_subprocess_exec(
        *JAVA, "join", stack.bootstrap, stack.topic, group, "20", stdout=PIPE, stderr=DEVNULL
    )
    assert java_consumer.stdout is not None
    assert (await java_consumer.stdout.readline()).strip() == b"assigned 12"  # all partitions: it is alone
    ours = await stack.start_proc("consumer-java-first", ["consume"], KAFKA_CONSUMER_GROUP=group)
    final = (await java_consumer.stdout.read()).decode().strip()
    await java_consumer.wait()
    assert java_consumer.returncode == 0
    assert ours.alive(), ours.output()[-3000:]
    assert final.startswith("final ") and 0 < int(final.split()[1]) < 12, f"ours took no partitions: {final}"


async def test_a_java_group_with_no_strategy_of_ours_stops_our_consumer_with_one_line(stack: Stack) -> None:
    group = f"{stack.group}-sticky-only"
    sticky = "partition.assignment.strategy=org.apache.kafka.clients.consumer.CooperativeStickyAssignor"
    java_consumer = await asyncio.create_subprocess_exec(
        *JAVA, "join", stack.bootstrap, stack.topic, group, "15", sticky, stdout=PIPE, stderr=DEVNULL
    )
    assert java_consumer.stdout is not None
    assert (await java_consumer.stdout.readline()).strip() == b"assigned 12"
    ours = Process("consumer-sticky", service_argv("consume"), stack.env(KAFKA_CONSUMER_GROUP=group))
    try:
        code = await asyncio.to_thread(ours.popen.wait, 60)
        assert code == 2, ours.output()[-3000:]
        last = ours.output().strip().splitlines()[-1]
        assert last.startswith(f"configuration error: consumer group {group}: its other members offer no"), last
    finally:
        ours.stop()
        await java_consumer.wait()
