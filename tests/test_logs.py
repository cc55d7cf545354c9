"""Issue 11, item 3: quiet, clean logs in an outage and on a normal start.

Unit: the JSON formatter drops uvicorn's `color_message` and ANSI escapes; aiokafka's
repeated records pass once per window; an Outage logs down / summary / back.
Integration: with the broker killed, `serve` and `consume` together log a handful of
lines, not about a hundred a second; a normal start logs no error.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from service.logs import JsonFormatter, Outage, ThirdPartyFilter
from tests.commands import Running, command_env
from tests.conftest import PrivateBroker, free_port
from tests.consume_helpers import PARTNER_ID, PARTNER_KEY, FakeClock


def record(name: str, level: int, msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_carry_no_colour_codes() -> None:
    rec = record(
        "uvicorn.error",
        logging.INFO,
        "Uvicorn running on %s",
        "\x1b[1mhttp://0.0.0.0:8080\x1b[0m",
        color_message="Uvicorn running on \x1b[1m%s\x1b[0m",
    )
    line = JsonFormatter().format(rec)
    assert "\x1b" not in line and "\\u001b" not in line
    assert "color_message" not in orjson.loads(line)


def test_aiokafka_repeats_pass_once_per_window_with_a_count() -> None:
    clock = FakeClock()
    f = ThirdPartyFilter(window_seconds=60, clock=clock)
    unable = "Unable connect to %r: %s"
    assert f.filter(record("aiokafka", logging.ERROR, unable, "node 1", "refused"))
    held = [f.filter(record("aiokafka", logging.ERROR, unable, "node 1", "refused")) for _ in range(500)]
    assert not any(held)
    assert f.filter(record("aiokafka.client", logging.ERROR, "Unable to update metadata from %r", 1))
    clock.advance(61)
    after = record("aiokafka", logging.ERROR, unable, "node 1", "refused")
    assert f.filter(after)
    assert after.repeated == 500
    assert f.filter(record("service.ingest", logging.WARNING, "ours pass untouched"))


def test_routine_coordinator_errors_are_not_errors() -> None:
    f = ThirdPartyFilter()
    rec = record(
        "aiokafka.consumer.group_coordinator", logging.ERROR, "Group Coordinator Request failed: %s", "[Error 15]"
    )
    f.filter(rec)
    assert rec.levelno == logging.INFO


def test_outage_logs_down_once_a_summary_then_back_at_info(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    states: list[bool] = []
    outage = Outage("kafka", logging.getLogger("t.outage"), on_change=states.append, summary_seconds=300, clock=clock)
    outage.up()
    with caplog.at_level(logging.INFO, logger="t.outage"):
        for _ in range(1000):
            outage.down("refused")
            clock.advance(0.1)  # 100 s of failures
        clock.advance(250)
        outage.down("refused")  # past the summary interval
        outage.up()
        outage.up()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "kafka unavailable"),
        ("WARNING", "kafka still unavailable"),
        ("INFO", "kafka is back"),
    ]
    assert caplog.records[1].failures == 1001
    assert states == [True, False, True]


def count_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


@pytest.mark.integration
async def test_broker_outage_is_a_handful_of_lines_and_a_normal_start_logs_no_error(
    private_broker: PrivateBroker, database_url: str, sandbox: object
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from service.migrate import migrate

    await migrate(database_url)
    admin = AIOKafkaAdminClient(bootstrap_servers=private_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("orders", 2, 1), NewTopic("orders.dlq", 1, 1)])
    finally:
        await admin.close()
    env = command_env(
        KAFKA_BOOTSTRAP_SERVERS=private_broker.bootstrap,
        KAFKA_TOPIC_MARKETPLACE_ORDERS="orders",
        KAFKA_TOPIC_DEAD_LETTER="orders.dlq",
        DATABASE_URL=database_url,
        SHOPEE_PARTNER_ID=str(PARTNER_ID),
        SHOPEE_PARTNER_KEY=PARTNER_KEY,
        SHOPEE_PUSH_KEY="test_partner_key_do_not_use",
        SHOPEE_API_BASE_URL=sandbox.url,  # type: ignore[attr-defined]
    )
    consumer = Running(["consume"], env)
    ingest = Running(["serve", "--host", "127.0.0.1", "--port", str(free_port())], env)
    try:
        consumer.wait_for_output("partitions assigned")
        ingest.wait_for_output("Application startup complete")
        for proc in (consumer, ingest):
            assert '"level":"error"' not in proc.output(), proc.output()
        before = count_lines(consumer.output()) + count_lines(ingest.output())
        private_broker.kill()
        await asyncio.sleep(20)  # before the fix: about 111 lines a second
        during = count_lines(consumer.output()) + count_lines(ingest.output()) - before
        assert during <= 20, consumer.output()[-3000:] + ingest.output()[-3000:]
    finally:
        consumer.close()
        ingest.close()
        private_broker.start(keep_data=True)
