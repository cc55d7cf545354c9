"""Issue 11, item 6: every bad setting and unreachable dependency is one line and an exit code.

Exit codes (README "Exit codes"): 2 configuration error, 3 dependency unreachable at start.
The placeholders are read from the k8s templates themselves, as a new operator would
apply them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.commands import Running, command_env, run_command
from tests.conftest import PrivateBroker, free_port

ROOT = Path(__file__).resolve().parent.parent
CONFIGMAP = yaml.safe_load((ROOT / "k8s/configmap.yaml").read_text())["data"]
SECRET = yaml.safe_load((ROOT / "k8s/secret.example.yaml").read_text())["stringData"]
PASSWORD = "pw_must_not_leak"


def assert_one_line(stderr_lines: list[str], *needles: str) -> None:
    """One plain line says what is wrong; anything else is a JSON log line (e.g. the Kafka
    connection check's warning), never a traceback."""
    plain = [line for line in stderr_lines if not line.startswith("{")]
    assert len(plain) == 1, "\n".join(stderr_lines)
    stderr_lines = plain
    for needle in needles:
        assert needle in stderr_lines[0], stderr_lines[0]
    assert "Traceback" not in stderr_lines[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", CONFIGMAP["KAFKA_BOOTSTRAP_SERVERS"]),
        ("DATABASE_URL", SECRET["DATABASE_URL"]),
        ("KAFKA_API_KEY", SECRET["KAFKA_API_KEY"]),
    ],
)
@pytest.mark.parametrize("command", ["serve", "consume"])
def test_template_placeholder_is_one_line_and_exit_2(command: str, variable: str, value: str) -> None:
    settings = {"DATABASE_URL": f"postgresql://u:{PASSWORD}@127.0.0.1:{free_port()}/db", variable: value}
    env = command_env(**settings)
    done = run_command([command, *(["--port", str(free_port())] if command == "serve" else [])], env)
    assert done.code == 2
    assert_one_line(done.lines, "configuration error", variable)
    assert PASSWORD not in done.stderr


@pytest.mark.parametrize("command", ["serve", "consume", "replay"])
def test_bootstrap_with_a_scheme_prefix_is_refused_at_once(command: str) -> None:
    env = command_env(KAFKA_BOOTSTRAP_SERVERS="SASL_SSL://pkc-abc.us-east-1.aws.confluent.cloud:9092")
    done = run_command([command], env)
    assert done.code == 2
    assert_one_line(done.lines, "KAFKA_BOOTSTRAP_SERVERS", "drop the SASL_SSL:// prefix")


def test_migrate_with_the_database_unreachable_is_one_line_and_exit_3() -> None:
    port = free_port()
    done = run_command(["migrate"], command_env(DATABASE_URL=f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db"))
    assert done.code == 3
    assert_one_line(done.lines, "unavailable: postgres at", f"127.0.0.1:{port}/db")
    assert PASSWORD not in done.stderr


def test_consume_with_the_database_unreachable_is_one_line_and_exit_3() -> None:
    port = free_port()
    env = command_env(DATABASE_URL=f"postgresql://u:{PASSWORD}@127.0.0.1:{port}/db")
    done = run_command(["consume"], env)
    assert done.code == 3
    assert_one_line(done.lines, "unavailable: postgres at", f"127.0.0.1:{port}/db")
    assert PASSWORD not in done.stderr


@pytest.mark.integration
def test_consume_with_kafka_unreachable_exits_3_without_a_raw_traceback(database_url: str) -> None:
    port = free_port()
    env = command_env(
        DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", KAFKA_STARTUP_WAIT_SECONDS="0"
    )
    done = run_command(["consume"], env)
    assert done.code == 3
    assert f"unavailable: kafka at 127.0.0.1:{port} is unreachable" in done.lines[-1]
    assert "Traceback" not in done.stderr
    assert "Unclosed" not in done.stderr
    # everything else on stderr is a JSON log line
    assert all(line.startswith("{") for line in done.lines[:-1]), done.stderr


@pytest.mark.integration
async def test_consume_waits_for_a_broker_that_comes_up_after_it(
    private_broker: PrivateBroker, database_url: str
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from service.migrate import migrate

    await migrate(database_url)
    admin = AIOKafkaAdminClient(bootstrap_servers=private_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("orders", 1, 1), NewTopic("orders.dlq", 1, 1)])
    finally:
        await admin.close()
    private_broker.stop()
    env = command_env(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=private_broker.bootstrap,
        KAFKA_TOPIC_MARKETPLACE_ORDERS="orders",
        KAFKA_TOPIC_DEAD_LETTER="orders.dlq",
    )
    proc = Running(["consume"], env)
    try:
        proc.wait_for_output('"msg":"kafka unavailable"')
        private_broker.start(keep_data=True)
        proc.wait_for_output("partitions assigned")
        assert '"msg":"kafka is back"' in proc.output()
    finally:
        proc.close()
