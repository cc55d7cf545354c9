from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from service.records import DeadLetter
from service.replay import Filters, parse_time_ms
from tests.conftest import ROOT, read_topic
from tests.consume_helpers import (
    consumer_settings,
    dead_letters,
    migrated,
    order,
    produce,
    running_consumer,
    settings_env,
    wait_for_rows,
)
from tests.sandbox_server import SandboxServer


def letter(reason: str, shop: str | None, failed_at_ms: int) -> DeadLetter:
    return DeadLetter(reason=reason, source="consumer", failed_at_ms=failed_at_ms, shop_id=shop)


def test_times_are_iso_or_unix_seconds() -> None:
    assert parse_time_ms("1700000000") == 1_700_000_000_000
    assert parse_time_ms("1700000000.5") == 1_700_000_000_500
    assert parse_time_ms("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_time_ms("2023-11-14T22:13:20") == 1_700_000_000_000  # naive = UTC
    assert parse_time_ms("2023-11-15T06:13:20+08:00") == 1_700_000_000_000


def test_filters_combine_reason_shop_and_time() -> None:
    f = Filters(reasons=frozenset({"shop_unknown"}), shops=frozenset({"1"}), since_ms=100, until_ms=200)
    assert f.match(letter("shop_unknown", "1", 150))
    assert not f.match(letter("order_not_found", "1", 150))
    assert not f.match(letter("shop_unknown", "2", 150))
    assert not f.match(letter("shop_unknown", "1", 99))
    assert not f.match(letter("shop_unknown", "1", 201))
    assert Filters().match(letter("anything", None, 0))


def replay_cli(env: dict[str, str], *args: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "service", "replay", *args], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    return [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.mark.integration
async def test_dead_lettered_unknown_shop_is_replayed_into_rows_after_its_credentials_exist(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    database_url: str,
    sandbox: SandboxServer,
) -> None:
    topic = await new_topic(partitions=2, prefix="orders")
    dlq = await new_topic(partitions=1, prefix="dlq")
    await migrated(database_url)
    settings = consumer_settings(
        bootstrap=kafka_bootstrap, topic=topic, dlq=dlq, database_url=database_url, shopee_url=sandbox.url
    )
    env = settings_env(settings)
    # an ingest-side letter with the raw body only: reported, never replayed
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        raw = DeadLetter.for_raw_body("unusable_payload", "bad json", b"{nope", int(time.time() * 1000), "7100")
        await producer.send_and_wait(dlq, raw.encode(), key=raw.key.encode())
    finally:
        await producer.stop()

    records = [order("7100", f"RP-{i}") for i in range(4)]
    await produce(kafka_bootstrap, topic, records)
    async with running_consumer(settings):
        letters = await dead_letters(kafka_bootstrap, dlq, expect=5, wait=20)
        assert sorted(d.reason for d in letters) == ["shop_unknown"] * 4 + ["unusable_payload"]

        await sandbox.add_shop(database_url, "7100")
        dry = replay_cli(env, "--shop", "7100", "--dry-run")
        actions = sorted(str(line.get("action")) for line in dry if "action" in line)
        assert actions == ["not_replayable"] + ["would_replay"] * 4
        assert dry[-1]["summary"]["would_replay"] == 4  # type: ignore[index]
        assert len(await read_topic(kafka_bootstrap, topic, expect=4, wait_seconds=2)) == 4  # nothing produced

        # a time filter that excludes everything replays nothing
        future = replay_cli(env, "--since", str(time.time() + 3600))
        assert future[-1]["summary"]["matched"] == 0  # type: ignore[index]

        done = replay_cli(env, "--reason", "shop_unknown", "--shop", "7100")
        assert done[-1]["summary"]["replayed"] == 4  # type: ignore[index]
        rows = await wait_for_rows(database_url, 4, within=20)
        assert sorted(r["order_sn"] for r in rows) == [f"RP-{i}" for i in range(4)]

        # replaying twice is harmless: same rows, no duplicates
        again = replay_cli(env, "--reason", "shop_unknown")
        assert again[-1]["summary"]["replayed"] == 4  # type: ignore[index]
        await wait_for_rows(database_url, 4, within=5)
    main = await read_topic(kafka_bootstrap, topic, expect=12, wait_seconds=10)
    assert len(main) == 12
    assert {m.key for m in main} == {b"shop-7100"}
    assert len(await wait_for_rows(database_url, 4, within=5)) == 4
