"""The ingest app with a fake sink: answers, dead letters and skips (no Kafka needed)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import orjson
import pytest
from starlette.testclient import TestClient

from service.errors import SinkUnavailable
from service.ingest.app import create_app
from service.records import DeadLetter
from service.settings import DEFAULT_TRANSFORMS, Settings
from tests.fakes import FakeSink
from tests.pushes import CALLBACK_URL, PUSH_KEY, legacy_push, real_push, signed_headers
from transforms import load_pipeline

ORDERS, DLQ = "orders", "orders.dlq"


def make_settings(**kw: object) -> Settings:
    return Settings(
        shopee_push_key=PUSH_KEY,
        shopee_callback_url=CALLBACK_URL,
        kafka_topic_marketplace_orders=ORDERS,
        kafka_topic_dead_letter=DLQ,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def client(sink: FakeSink) -> Iterator[TestClient]:
    app = create_app(make_settings(), sink, load_pipeline(DEFAULT_TRANSFORMS.split(",")), clock=lambda: 1_700_000_000.5)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, body: bytes, headers: dict[str, str] | None = None) -> object:
    return client.post("/webhooks/shopee", content=body, headers=signed_headers(body) if headers is None else headers)


def test_signed_push_is_forwarded_with_empty_2xx(client: TestClient, sink: FakeSink) -> None:
    body = real_push(727720655, "220810QSK8S7BX", "PROCESSED", 1660123127)
    r = client.post("/webhooks/shopee", content=body, headers=signed_headers(body))
    assert r.status_code == 200 and r.content == b""
    [(key, value)] = sink.on(ORDERS)
    assert key == b"shop-727720655"
    assert orjson.loads(value)["timestamp"] == 1_700_000_000_500


def test_unsigned_push_is_401_and_nothing_forwarded(client: TestClient, sink: FakeSink) -> None:
    body = real_push(1, "A")
    for headers in ({}, {"Authorization": signed_headers(body)["Authorization"].upper()}, {"Authorization": "x"}):
        r = client.post("/webhooks/shopee", content=body, headers=headers)
        assert r.status_code == 401
    assert sink.sent == []
    assert b"gateway_ingest_signature_failures_total 3.0" in client.get("/metrics").content


def test_signature_for_another_url_is_401(client: TestClient, sink: FakeSink) -> None:
    body = real_push(1, "A")
    r = client.post("/webhooks/shopee", content=body, headers=signed_headers(body, url=CALLBACK_URL + "/"))
    assert r.status_code == 401 and sink.sent == []


def test_body_over_limit_is_413(client: TestClient, sink: FakeSink) -> None:
    body = b"{" + b" " * (1_048_576) + b"}"
    r = client.post("/webhooks/shopee", content=body, headers=signed_headers(body))
    assert r.status_code == 413 and sink.sent == []


def test_unpaid_is_2xx_and_not_forwarded(client: TestClient, sink: FakeSink) -> None:
    body = real_push(1, "A", "UNPAID")
    r = client.post("/webhooks/shopee", content=body, headers=signed_headers(body))
    assert r.status_code == 200 and r.content == b"" and sink.sent == []
    assert b'gateway_ingest_skips_total{reason="unpaid"} 1.0' in client.get("/metrics").content


def test_verification_ping_is_2xx_empty(client: TestClient, sink: FakeSink) -> None:
    body = b'{"code":0,"data":{"verify_info":"hello"}}'
    r = client.post("/webhooks/shopee", content=body, headers=signed_headers(body))
    assert r.status_code == 200 and r.content == b"" and sink.sent == []


def test_unhandled_code_is_counted_by_code(client: TestClient, sink: FakeSink) -> None:
    body = b'{"code":4,"shop_id":1,"data":{"ordersn":"A","tracking_no":"T"},"timestamp":1}'
    assert client.post("/webhooks/shopee", content=body, headers=signed_headers(body)).status_code == 200
    assert sink.sent == []
    assert b'gateway_ingest_unhandled_codes_total{code="4"} 1.0' in client.get("/metrics").content


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"code":3,', "invalid_json"),
        (b"[1,2]", "not_an_object"),
        (b'{"code":3,"shop_id":1,"data":{"status":"SHIPPED"}}', "missing_fields"),
        (b"\xff\xfe", "invalid_json"),
    ],
)
def test_signed_unusable_payload_is_dead_lettered_with_raw_body(
    client: TestClient, sink: FakeSink, body: bytes, reason: str
) -> None:
    r = client.post("/webhooks/shopee", content=body, headers=signed_headers(body))
    assert r.status_code == 200 and r.content == b""
    assert sink.on(ORDERS) == []
    [(_, value)] = sink.on(DLQ)
    letter = DeadLetter.decode(value)
    assert letter.reason == reason and letter.source == "ingest"
    assert base64.b64decode(letter.raw_body_b64 or "") == body


def test_old_guide_legacy_payloads(client: TestClient, sink: FakeSink) -> None:
    names = ["TEST_SINGLE_001", *[f"TEST_BATCH_{i:03d}" for i in range(1, 51)]]
    for name in names:
        body = legacy_push("123456", name)
        assert client.post("/webhooks/shopee", content=body, headers=signed_headers(body)).status_code == 200
    unpaid = legacy_push("123456", "TEST_UNPAID_001", "UNPAID")
    assert client.post("/webhooks/shopee", content=unpaid, headers=signed_headers(unpaid)).status_code == 200
    forwarded = [orjson.loads(v)["order_sn"] for _, v in sink.on(ORDERS)]
    assert forwarded == names


def test_sink_unavailable_is_503_not_500(client: TestClient, sink: FakeSink) -> None:
    sink.fail = SinkUnavailable("down")
    body = real_push(1, "A")
    r = client.post("/webhooks/shopee", content=body, headers=signed_headers(body))
    assert r.status_code == 503
    assert client.get("/readyz").status_code == 503


def test_unexpected_sink_error_is_503_not_500(client: TestClient, sink: FakeSink) -> None:
    sink.fail = RuntimeError("boom")
    body = real_push(1, "A")
    assert client.post("/webhooks/shopee", content=body, headers=signed_headers(body)).status_code == 503


def test_failing_user_transform_dead_letters_instead_of_500(sink: FakeSink) -> None:
    def broken(event: object) -> object:
        raise ValueError("bug in a user transform")

    pipeline = load_pipeline(["transforms.shopee:normalise"])
    pipeline.transforms = (*pipeline.transforms, broken)  # type: ignore[assignment]
    app = create_app(make_settings(), sink, pipeline)
    with TestClient(app, raise_server_exceptions=False) as c:
        body = real_push(1, "A")
        assert c.post("/webhooks/shopee", content=body, headers=signed_headers(body)).status_code == 200
    [(_, value)] = sink.on(DLQ)
    assert DeadLetter.decode(value).reason == "transform_error"


def test_health_ready_and_lifespan(sink: FakeSink) -> None:
    app = create_app(make_settings(), sink, load_pipeline(DEFAULT_TRANSFORMS.split(",")))
    with TestClient(app) as c:
        assert sink.started
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        assert "gateway_ingest_requests_total" in c.get("/metrics").text
    assert sink.stopped


def test_missing_callback_url_is_a_config_error(sink: FakeSink) -> None:
    from service.errors import ConfigError

    with pytest.raises(ConfigError, match="SHOPEE_CALLBACK_URL"):
        create_app(Settings(shopee_push_key=PUSH_KEY), sink, load_pipeline(["transforms.shopee:normalise"]))


def test_the_outbox_gauges_are_served_on_the_apps_metrics() -> None:
    from service.ingest.server import build_app

    app = build_app(make_settings(database_url="postgresql://gateway@127.0.0.1:1/unused"))
    app.state.sink.metrics.outbox_depth.set(7)
    assert "gateway_outbox_depth 7.0" in TestClient(app).get("/metrics").text  # no lifespan: no database needed
