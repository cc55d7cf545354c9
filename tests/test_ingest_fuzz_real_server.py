"""Property-based fuzzing of the real ingest server and broker (few examples): exactly the
usable pushes reach the orders topic, and exactly the unusable ones the dead-letter topic."""

from __future__ import annotations

import uuid

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.records import DeadLetter
from tests.conftest import TopicFactory, free_port, read_topic
from tests.pushes import ingest_env, ingest_server, signed_headers
from tests.test_ingest_fuzz import STATUSES, digits, json_value


@st.composite
def labelled_pushes(draw: st.DrawFn) -> tuple[str, bytes]:
    """(what should happen, body): "forward", "dead_letter", "skip" or "reject" (unsigned)."""
    kind = draw(st.sampled_from(["forward", "forward", "dead_letter", "dead_letter", "skip", "reject"]))
    sn = f"FZ{uuid.uuid4().hex[:10].upper()}"
    if kind == "forward":
        shop = draw(st.one_of(st.integers(0, 2**64 - 1), digits))
        extra = draw(
            st.dictionaries(
                st.text(max_size=8).filter(lambda k: k not in {"code", "shop_id", "data"}), json_value, max_size=3
            )
        )
        status = draw(st.sampled_from(STATUSES[1:]))
        return kind, orjson.dumps({**extra, "code": 3, "shop_id": shop, "data": {"ordersn": sn, "status": status}})
    if kind == "dead_letter":
        broken = draw(
            st.one_of(
                st.binary(max_size=300).filter(_not_a_json_object),
                st.builds(
                    lambda v: orjson.dumps({"code": 3, "shop_id": v, "data": {"ordersn": sn}}),
                    st.none()
                    | st.booleans()
                    | st.floats(allow_nan=False)
                    | st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2),
                ),
                st.just(orjson.dumps({"code": 3, "shop_id": 1, "data": {"status": "SHIPPED", "x": sn}})),
            )
        )
        return kind, broken
    if kind == "skip":
        code = draw(st.sampled_from([0, 1, 2, 4, 12, 15]))
        status = "UNPAID" if code == 3 else "SHIPPED"
        return kind, orjson.dumps({"code": code, "shop_id": 1, "data": {"ordersn": sn, "status": status}})
    return kind, orjson.dumps({"code": 3, "shop_id": 1, "data": {"ordersn": sn, "status": "SHIPPED"}})


def _not_a_json_object(body: bytes) -> bool:
    try:
        return not isinstance(orjson.loads(body), dict)
    except orjson.JSONDecodeError:
        return True


@pytest.mark.integration
async def test_real_server_forwards_exactly_the_usable_pushes(kafka_bootstrap: str, new_topic: TopicFactory) -> None:
    topic, dlq = await new_topic(partitions=3), await new_topic()
    env = ingest_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_MARKETPLACE_ORDERS=topic, KAFKA_TOPIC_DEAD_LETTER=dlq
    )
    sent: list[tuple[str, bytes]] = []

    with ingest_server(free_port(), env) as base, httpx.Client(base_url=base, timeout=10) as client:
        # The server is a subprocess: a blocking client inside this async test holds up nothing.
        @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(push=labelled_pushes())
        def post_one(push: tuple[str, bytes]) -> None:
            kind, body = push
            headers = {"Authorization": "0" * 64} if kind == "reject" else signed_headers(body)
            r = client.post("/webhooks/shopee", content=body, headers=headers)
            assert r.status_code == (401 if kind == "reject" else 200)
            assert kind == "reject" or r.content == b""
            sent.append(push)

        post_one()

    forwarded = sorted(orjson.loads(b)["data"]["ordersn"] for k, b in sent if k == "forward")
    dead = sorted(b for k, b in sent if k == "dead_letter")
    assert forwarded and dead  # 30 draws, a third of each: both all but certain
    on_topic = await read_topic(kafka_bootstrap, topic, expect=len(forwarded))
    on_dlq = await read_topic(kafka_bootstrap, dlq, expect=len(dead))
    assert sorted(orjson.loads(rec.value)["order_sn"] for rec in on_topic) == forwarded
    assert sorted(DeadLetter.decode(rec.value).raw_body() or b"" for rec in on_dlq) == dead
