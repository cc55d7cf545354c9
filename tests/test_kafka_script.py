"""Issue 11, item 4: scripts/kafka.sh (behind `make kafka-up/kafka-down/kafka-wipe`).

Stopping and starting the local broker keeps its topics and records (an outage drill must
not lose the dead letters or strand the outbox); only `wipe` deletes them; a taken
controller port is one clear line, not a Java stack trace.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PrivateBroker, read_topic
from tests.consume_helpers import order, produce

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def kafka_sh(action: str, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_KEEP_DATA"}
    env["KAFKA_PORT"] = str(port)
    return subprocess.run(
        [str(ROOT / "scripts/kafka.sh"), action], env=env, capture_output=True, text=True, timeout=180, check=False
    )


async def test_down_then_up_keeps_topics_and_records_and_wipe_deletes_them(private_broker: PrivateBroker) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=private_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("kept", 1, 1)])
    finally:
        await admin.close()
    await produce(private_broker.bootstrap, "kept", [order("1", "SURVIVES")])
    assert kafka_sh("down", private_broker.port).returncode == 0
    up = kafka_sh("up", private_broker.port)  # as `make kafka-up` runs it: no KAFKA_KEEP_DATA
    assert up.returncode == 0, up.stderr
    assert len(await read_topic(private_broker.bootstrap, "kept", expect=1)) == 1
    wipe = kafka_sh("wipe", private_broker.port)
    assert wipe.returncode == 0, wipe.stderr
    assert not (ROOT / f".cache/kafka/run-{private_broker.port}").exists()
    private_broker.start(keep_data=False)  # the fixture stops it


def test_a_taken_controller_port_is_one_clear_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        controller = taken.getsockname()[1]
        done = kafka_sh("up", controller - 1)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"controller port {controller}" in lines[0], done.stderr
