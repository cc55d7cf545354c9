"""The real ingest server (`python -m service serve`) against the real local broker."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import ROOT, PrivateBroker, TopicFactory, free_port, read_topic
from tests.partitioner import partition_for
from tests.processes import service_argv
from tests.pushes import ingest_env, ingest_server, real_push, signed_headers

pytestmark = pytest.mark.integration


async def post_all(base: str, bodies: list[bytes]) -> list[int]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        responses = await asyncio.gather(
            *(client.post("/webhooks/shopee", content=b, headers=signed_headers(b)) for b in bodies)
        )
    assert all(r.content == b"" for r in responses if r.status_code < 300)
    return [r.status_code for r in responses]


async def test_signed_pushes_become_keyed_records_on_the_default_partition(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    topic, dlq = await new_topic(partitions=12), await new_topic(partitions=1)
    env = ingest_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_MARKETPLACE_ORDERS=topic, KAFKA_TOPIC_DEAD_LETTER=dlq
    )
    shops = [727720655, 1, 42, 100001, 99999999, 5]
    bodies = [
        real_push(shop, f"SN{shop}X{i:02d}", "READY_TO_SHIP", 1_700_000_000 + i) for shop in shops for i in range(10)
    ]
    with ingest_server(free_port(), env) as base:
        before = time.time() * 1000
        statuses = await post_all(base, bodies)
        # the same push again: Shopee may deliver it twice
        assert await post_all(base, [bodies[0]]) == [200]
        after = time.time() * 1000
    assert statuses == [200] * len(bodies)

    records = await read_topic(kafka_bootstrap, topic, expect=len(bodies) + 1)
    assert len(records) == len(bodies) + 1
    by_sn: dict[str, list[dict[str, object]]] = {}
    for rec in records:
        value = orjson.loads(rec.value)
        assert rec.key == f"shop-{value['shop_id']}".encode()
        assert rec.partition == partition_for(rec.key, 12)
        assert set(value) == {
            "platform",
            "shop_id",
            "order_sn",
            "order_status",
            "timestamp",
            "update_time",
            "event_id",
            "code",
        }
        assert value["platform"] == "shopee" and value["code"] == 3 and value["order_status"] == "READY_TO_SHIP"
        assert isinstance(value["shop_id"], str)
        assert before - 1 <= value["timestamp"] <= after + 1
        by_sn.setdefault(value["order_sn"], []).append(value)
    assert len(by_sn) == len(bodies)
    first = by_sn[f"SN{shops[0]}X00"]
    assert len(first) == 2 and first[0]["event_id"] == first[1]["event_id"]
    assert first[0]["update_time"] == 1_700_000_000


def test_python_partitioner_agrees_with_the_java_client(tmp_path: Path) -> None:
    classpath = ":".join(str(p) for p in (ROOT / ".cache/kafka/libs").glob("*.jar"))
    source = tmp_path / "Partition.java"
    source.write_text(
        "import org.apache.kafka.common.utils.Utils;\n"
        "public class Partition { public static void main(String[] a) {\n"
        "  int n = Integer.parseInt(a[0]);\n"
        "  for (int i = 1; i < a.length; i++) {\n"
        "    byte[] k = a[i].getBytes(java.nio.charset.StandardCharsets.UTF_8);\n"
        "    System.out.println(Utils.toPositive(Utils.murmur2(k)) % n); } } }\n"
    )
    keys = [f"shop-{s}" for s in (727720655, 1, 42, 100001, 99999999, 5, 123456, 2001887)]
    out = subprocess.run(
        ["java", "-cp", classpath, str(source), "100", *keys], capture_output=True, text=True, check=True
    )
    assert [int(x) for x in out.stdout.split()] == [partition_for(k.encode(), 100) for k in keys]


async def test_bad_signatures_forward_nothing(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    topic, dlq = await new_topic(), await new_topic()
    env = ingest_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_MARKETPLACE_ORDERS=topic, KAFKA_TOPIC_DEAD_LETTER=dlq
    )
    body = real_push(1, "BADSIG")
    good = signed_headers(body)["Authorization"]
    bad_headers = [
        {},
        {"Authorization": good.upper()},
        {"Authorization": good[:-2]},
        {"Authorization": signed_headers(body, key="another_key")["Authorization"]},
        {"Authorization": signed_headers(body, url="https://receiver.example.com/shopee/push/")["Authorization"]},
        {"Authorization": signed_headers(body.replace(b"BADSIG", b"BADSIH"))["Authorization"]},
    ]
    with ingest_server(free_port(), env) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            for headers in bad_headers:
                r = await client.post("/webhooks/shopee", content=body, headers=headers)
                assert r.status_code == 401
            marker = real_push(1, "MARKER")
            assert (
                await client.post("/webhooks/shopee", content=marker, headers=signed_headers(marker))
            ).status_code == 200
    records = await read_topic(kafka_bootstrap, topic, expect=1)
    assert [orjson.loads(r.value)["order_sn"] for r in records] == ["MARKER"]
    assert await read_topic(kafka_bootstrap, dlq, wait_seconds=2) == []


async def test_broker_down_gives_503_within_budget_and_recovers_without_restart(private_broker: PrivateBroker) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=private_broker.bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("orders", 3, 1), NewTopic("orders.dlq", 1, 1)])
    await admin.close()
    env = ingest_env(
        KAFKA_BOOTSTRAP_SERVERS=private_broker.bootstrap,
        KAFKA_TOPIC_MARKETPLACE_ORDERS="orders",
        KAFKA_TOPIC_DEAD_LETTER="orders.dlq",
        INGEST_RESPONSE_BUDGET_SECONDS="1.0",
    )
    with ingest_server(free_port(), env) as base:
        assert await post_all(base, [real_push(1, "BEFORE")]) == [200]
        private_broker.stop()
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for i in range(3):
                body = real_push(1, f"DURING{i}")
                r = await client.post("/webhooks/shopee", content=body, headers=signed_headers(body))
                assert r.status_code == 503, r.text
            assert (await client.get("/readyz")).status_code == 503
            private_broker.start(keep_data=True)
            deadline = time.monotonic() + 60
            status = 0
            while time.monotonic() < deadline:
                body = real_push(1, "AFTER")
                status = (await client.post("/webhooks/shopee", content=body, headers=signed_headers(body))).status_code
                if status == 200:
                    break
                await asyncio.sleep(0.5)
            assert status == 200, "ingest did not recover after the broker came back"
            assert (await client.get("/readyz")).status_code == 200
    sns = {orjson.loads(r.value)["order_sn"] for r in await read_topic(private_broker.bootstrap, "orders", expect=2)}
    assert {"BEFORE", "AFTER"} <= sns


def serve_until_it_stops(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`serve` with a configuration it must refuse: it exits at start-up (bounded wait)."""
    argv = service_argv("serve", "--port", str(free_port()))
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_misspelled_transform_stops_start_up_with_one_line() -> None:
    env = ingest_env(INGEST_TRANSFORMS="transforms.shopee:normalise,transforms.shopee:skip_unpayed")
    out = serve_until_it_stops(env)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "INGEST_TRANSFORMS" in lines[0] and "skip_unpayed" in lines[0]


def test_missing_callback_url_stops_start_up_naming_it() -> None:
    env = ingest_env()
    env.pop("SHOPEE_CALLBACK_URL")
    out = serve_until_it_stops(env)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "SHOPEE_CALLBACK_URL" in out.stderr
    assert "test_partner_key" not in out.stderr
