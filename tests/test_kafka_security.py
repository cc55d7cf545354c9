"""serve and consume over TLS and SASL listeners with a private CA (docs/contract.md), and start-up
that stops with one line when the broker rejects the credentials or the mechanism."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from tests.conftest import read_topic
from tests.e2e import Stack
from tests.pushes import real_push
from tests.schemas import assert_valid_record
from tests.secure_broker import LISTENERS, SecureBroker
from tests.test_e2e import post, rows, wait_rows

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("listener", list(LISTENERS))
async def test_pushes_go_in_and_rows_come_out_over_the_listener(
    listener: str, secure_broker: SecureBroker, database_url: str
) -> None:
    env = secure_broker.env(listener)
    stack = Stack(env["KAFKA_BOOTSTRAP_SERVERS"], database_url, settings=env, admin_bootstrap=secure_broker.plaintext)
    await stack.start()
    try:
        shop = 830000 + list(LISTENERS).index(listener)
        await stack.add_shops([shop])
        bodies = [real_push(shop, f"SEC{listener}{i}", "READY_TO_SHIP", 1_735_689_600 + i) for i in range(3)]
        assert await post(stack, bodies) == [200] * 3
        await wait_rows(database_url, shop, 3, 60)
        assert [r["order_sn"] for r in await rows(database_url, shop)] == [f"SEC{listener}{i}" for i in range(3)]
        on_topic = await read_topic(secure_broker.plaintext, stack.topic, expect=3)
        assert len(on_topic) == 3, "the ingest must have written to Kafka over the listener, not the outbox"
        for record in on_topic:
            assert_valid_record(orjson.loads(record.value))
    finally:
        stack.stop()


def start_up(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")}
    base.update(
        SHOPEE_PARTNER_ID="1",
        SHOPEE_PARTNER_KEY="test-partner-key",
        SHOPEE_CALLBACK_URL="https://gw.example.com/shopee",
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        CONSUMER_METRICS_PORT="0",
        INGEST_OUTBOX_ENABLED="false",
    )
    base.update(env)
    args = [sys.executable, "-m", "service", command, *(["--port", "0"] if command == "serve" else [])]
    return subprocess.run(args, env=base, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("command", ["serve", "consume", "recover"])
@pytest.mark.parametrize(
    ("listener", "change", "expected"),
    [
        ("SASLSCRAM", {"KAFKA_API_SECRET": "wrong-password"}, "SaslAuthenticationFailed"),
        ("SASLPLAIN", {"KAFKA_API_SECRET": "wrong-password"}, "SaslAuthenticationFailed"),
        ("SASLSCRAM", {"KAFKA_SASL_MECHANISM": "PLAIN"}, "the listener does not offer PLAIN"),
    ],
)
def test_a_rejected_login_stops_start_up_with_one_line(
    command: str, listener: str, change: dict[str, str], expected: str, secure_broker: SecureBroker
) -> None:
    done = start_up(command, {**secure_broker.env(listener), **change})
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: Kafka at 127.0.0.1:"), done.stderr[-2000:]
    assert expected in lines[0]
