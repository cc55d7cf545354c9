"""Hostile and broken input at the ingest endpoint: a corpus, each case with its answer.

docs/contract.md#http-answers: an empty 2xx for what was forwarded, skipped or dead-lettered; 401 with nothing
forwarded or stored for a bad signature; 413 over the size limit; 408 when the body does
not arrive within the response budget; 503 only when nothing could be made durable;
never a 500. In-process, with a fake sink; the cases that need a real server (slow bodies,
header whitespace) are in test_ingest_real_server.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest
from starlette.testclient import TestClient

from service.ingest.app import create_app
from service.records import DeadLetter
from service.settings import DEFAULT_TRANSFORMS
from tests.pushes import CALLBACK_URL, PUSH_KEY, legacy_push, real_push, signed_headers
from tests.test_ingest_app import DLQ, ORDERS, FakeSink, make_settings
from transforms import load_pipeline

MIB = 1024 * 1024


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def client(sink: FakeSink) -> Iterator[TestClient]:
    app = create_app(make_settings(), sink, load_pipeline(DEFAULT_TRANSFORMS.split(",")), clock=lambda: 1_700_000_000.0)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def push_with(**fields: object) -> bytes:
    """A code-3 push whose top level and `data` are overridden by `fields` (data__x -> data.x)."""
    data: dict[str, object] = {"items": [], "ordersn": "SN1", "status": "READY_TO_SHIP", "update_time": 1_700_000_000}
    body: dict[str, object] = {"shop_id": 42, "code": 3, "timestamp": 1_700_000_000}
    for name, value in fields.items():
        target, _, key = name.rpartition("__")
        where = data if target == "data" else body
        if value is _DROP:
            where.pop(key, None)
        else:
            where[key] = value
    body["data"] = data
    return orjson.dumps(body)


_DROP = object()


@dataclass(frozen=True)
class Case:
    """What a signed body should come to: forwarded, skipped or a dead letter (reason)."""

    body: bytes
    outcome: str  # "forwarded" | "skipped" | "dead_letter"
    reason: str = ""


SIGNED_CORPUS: dict[str, Case] = {
    # bodies that are not JSON objects
    "empty body": Case(b"", "dead_letter", "invalid_json"),
    "whitespace only": Case(b" \r\n\t", "dead_letter", "invalid_json"),
    "truncated json": Case(real_push(1, "A")[:-7], "dead_letter", "invalid_json"),
    "trailing garbage": Case(real_push(1, "A") + b"}", "dead_letter", "invalid_json"),
    "single quotes": Case(b"{'code': 3}", "dead_letter", "invalid_json"),
    "nan": Case(b'{"code":3,"shop_id":NaN}', "dead_letter", "invalid_json"),
    "invalid utf-8": Case(
        b'{"code":3,"shop_id":1,"data":{"ordersn":"\xff\xfe","status":"X"}}', "dead_letter", "invalid_json"
    ),
    "lone surrogate escape": Case(
        b'{"code":3,"shop_id":1,"data":{"ordersn":"\\ud800"}}', "dead_letter", "invalid_json"
    ),
    "utf-8 bom": Case(b"\xef\xbb\xbf" + real_push(1, "A"), "dead_letter", "invalid_json"),
    "top-level array": Case(b"[1,2]", "dead_letter", "not_an_object"),
    "top-level string": Case(b'"push"', "dead_letter", "not_an_object"),
    "top-level null": Case(b"null", "dead_letter", "not_an_object"),
    "100k nested arrays": Case(b"[" * 100_000 + b"]" * 100_000, "dead_letter", "invalid_json"),
    "50k nested objects in data": Case(
        b'{"code":3,"shop_id":1,"data":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001, "dead_letter", "invalid_json"
    ),
    "number above float range": Case(push_with(timestamp=orjson.Fragment(b"1e309")), "dead_letter", "invalid_json"),
    # wrong types: shop_id
    "shop_id object": Case(push_with(shop_id={"id": 1}), "dead_letter", "missing_fields"),
    "shop_id array": Case(push_with(shop_id=[1]), "dead_letter", "missing_fields"),
    "shop_id true": Case(push_with(shop_id=True), "dead_letter", "missing_fields"),
    "shop_id negative": Case(push_with(shop_id=-5), "dead_letter", "missing_fields"),
    "shop_id float": Case(push_with(shop_id=42.0), "dead_letter", "missing_fields"),
    "shop_id null": Case(push_with(shop_id=None), "dead_letter", "missing_fields"),
    "shop_id 2**64": Case(push_with(shop_id=orjson.Fragment(str(2**64).encode())), "dead_letter", "missing_fields"),
    "shop_id 1e308": Case(push_with(shop_id=1e308), "dead_letter", "missing_fields"),
    "shop_id superscript digit": Case(push_with(shop_id="²"), "dead_letter", "missing_fields"),
    "shop_id arabic-indic digits": Case(push_with(shop_id="١٢٣"), "dead_letter", "missing_fields"),
    "shop_id 100 KB digits": Case(push_with(shop_id="7" * 100_000), "dead_letter", "missing_fields"),
    "shop_id u64 max": Case(push_with(shop_id=2**64 - 1), "forwarded"),
    "shop_id digit string": Case(push_with(shop_id="42"), "forwarded"),
    "shopid spelling": Case(push_with(shop_id=_DROP, shopid=42), "forwarded"),
    # wrong types: ordersn and status
    "ordersn number": Case(push_with(data__ordersn=12345), "dead_letter", "missing_fields"),
    "ordersn list": Case(push_with(data__ordersn=["SN1"]), "dead_letter", "missing_fields"),
    "ordersn empty": Case(push_with(data__ordersn=""), "dead_letter", "missing_fields"),
    "ordersn 100 KB": Case(push_with(data__ordersn="S" * 100_000), "dead_letter", "missing_fields"),
    "ordersn with NUL": Case(push_with(data__ordersn="SN\x001"), "dead_letter", "missing_fields"),
    "ordersn with newline": Case(push_with(data__ordersn="SN\n1"), "dead_letter", "missing_fields"),
    "status number": Case(push_with(data__status=5), "forwarded"),
    "status 100 KB": Case(push_with(data__status="X" * 100_000), "forwarded"),
    "status lower-case unpaid": Case(push_with(data__status="unpaid"), "skipped"),
    # wrong types: code
    "code string digits": Case(push_with(code="3"), "forwarded"),
    "code string word": Case(push_with(code="three"), "dead_letter", "bad_code"),
    "code float": Case(push_with(code=3.0), "dead_letter", "bad_code"),
    "code null": Case(push_with(code=None), "dead_letter", "bad_code"),
    "code missing": Case(push_with(code=_DROP), "dead_letter", "bad_code"),
    "code 2**64": Case(push_with(code=orjson.Fragment(str(2**64).encode())), "dead_letter", "bad_code"),
    "code negative": Case(push_with(code=-3), "dead_letter", "bad_code"),
    "code superscript digit": Case(push_with(code="³"), "dead_letter", "bad_code"),
    "code other": Case(push_with(code=4), "skipped"),
    "code zero ping": Case(b'{"code":0,"data":{"verify_info":"hello"}}', "skipped"),
    # numbers in other fields do not stop a usable push
    "update_time 1e308": Case(push_with(data__update_time=1e308), "forwarded"),
    "update_time 2**64": Case(push_with(data__update_time=orjson.Fragment(str(2**64).encode())), "forwarded"),
    "update_time superscript": Case(push_with(data__update_time="²"), "forwarded"),
    # missing and extra fields
    "data missing": Case(orjson.dumps({"shop_id": 1, "code": 3}), "dead_letter", "missing_data"),
    "data is a list": Case(orjson.dumps({"shop_id": 1, "code": 3, "data": [1]}), "dead_letter", "missing_data"),
    "ordersn missing": Case(push_with(data__ordersn=_DROP), "dead_letter", "missing_fields"),
    "shop_id missing": Case(push_with(shop_id=_DROP), "dead_letter", "missing_fields"),
    "empty object": Case(b"{}", "dead_letter", "bad_code"),
    "extra fields everywhere": Case(push_with(extra={"x": [1, None]}, data__extra="y", msg_id="ab" * 16), "forwarded"),
    "legacy flat shape": Case(legacy_push("123456", "TEST002"), "forwarded"),
    "legacy flat without order_sn": Case(
        orjson.dumps({"shop_id": "1", "order_status": "READY_TO_SHIP"}), "dead_letter", "missing_fields"
    ),
}


def post(client: TestClient, body: bytes, headers: dict[str, str] | list[tuple[str, str]] | None = None) -> object:
    return client.post("/webhooks/shopee", content=body, headers=signed_headers(body) if headers is None else headers)


@pytest.mark.parametrize("case", SIGNED_CORPUS.values(), ids=SIGNED_CORPUS.keys())
def test_signed_hostile_body_gets_its_answer(client: TestClient, sink: FakeSink, case: Case) -> None:
    r = client.post("/webhooks/shopee", content=case.body, headers=signed_headers(case.body))
    assert r.status_code == 200 and r.content == b""
    if case.outcome == "forwarded":
        [(key, value)] = sink.on(ORDERS)
        record = orjson.loads(value)
        assert key == f"shop-{record['shop_id']}".encode() and record["order_sn"]
        assert sink.on(DLQ) == []
    elif case.outcome == "dead_letter":
        assert sink.on(ORDERS) == []
        [(_, value)] = sink.on(DLQ)
        letter = DeadLetter.decode(value)
        assert (letter.reason, letter.source) == (case.reason, "ingest")
        assert letter.raw_body() == case.body
    else:
        assert sink.sent == []


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "multipart/form-data; boundary=xyz", "application/x-www-form-urlencoded", "image/png"],
)
def test_content_type_does_not_matter(client: TestClient, sink: FakeSink, content_type: str | None) -> None:
    body = real_push(42, "CT1")
    headers = {"Authorization": signed_headers(body)["Authorization"]}
    if content_type is not None:
        headers["Content-Type"] = content_type
    r = post(client, body, headers)
    assert r.status_code == 200 and r.content == b""  # type: ignore[attr-defined]
    assert len(sink.on(ORDERS)) == 1


def test_unsigned_empty_body_is_401(client: TestClient, sink: FakeSink) -> None:
    r = post(client, b"", {})
    assert r.status_code == 401 and sink.sent == []  # type: ignore[attr-defined]


def _signature(body: bytes) -> str:
    return signed_headers(body)["Authorization"]


BODY = real_push(727720655, "SIGCASE", "PROCESSED", 1_660_123_127)
GOOD = _signature(BODY)

BAD_SIGNATURES: dict[str, list[tuple[str, str | bytes]]] = {
    "absent": [],
    "empty": [("Authorization", "")],
    "upper-case hex": [("Authorization", GOOD.upper())],
    "truncated by one": [("Authorization", GOOD[:-1])],
    "half": [("Authorization", GOOD[:32])],
    "one more char": [("Authorization", GOOD + "0")],
    "for another url": [("Authorization", signed_headers(BODY, url=CALLBACK_URL + "/")["Authorization"])],
    "for http scheme": [
        ("Authorization", signed_headers(BODY, url=CALLBACK_URL.replace("https", "http"))["Authorization"])
    ],
    "another key": [("Authorization", signed_headers(BODY, key=PUSH_KEY + "x")["Authorization"])],
    "another body": [("Authorization", _signature(BODY + b" "))],
    "body only, no url": [("Authorization", signed_headers(BODY, url="")["Authorization"])],
    "sha256= prefix": [("Authorization", "sha256=" + GOOD)],
    "bearer prefix": [("Authorization", "Bearer " + GOOD)],
    "space inside": [("Authorization", GOOD[:10] + " " + GOOD[10:])],
    "base64 of the digest": [("Authorization", base64.b64encode(bytes.fromhex(GOOD)).decode())],
    "duplicated, good first": [("Authorization", GOOD), ("Authorization", "0" * 64)],
    "duplicated, good second": [("Authorization", "0" * 64), ("Authorization", GOOD)],
    "duplicated, both good": [("Authorization", GOOD), ("Authorization", GOOD)],
    "in another header": [("X-Shopee-Signature", GOOD)],
    "non-ascii bytes": [("Authorization", "é".encode() * 32)],
}


@pytest.mark.parametrize("headers", BAD_SIGNATURES.values(), ids=BAD_SIGNATURES.keys())
def test_bad_signature_is_401_and_nothing_forwarded_or_stored(
    client: TestClient, sink: FakeSink, headers: list[tuple[str, str | bytes]]
) -> None:
    r = client.post("/webhooks/shopee", content=BODY, headers=headers)
    assert r.status_code == 401 and sink.sent == []
    assert b"gateway_ingest_signature_failures_total 1.0" in client.get("/metrics").content


@pytest.mark.parametrize("value", [" " + GOOD, GOOD + "\t", "  " + GOOD + " \t "])
def test_spaces_around_the_signature_are_not_part_of_it(client: TestClient, sink: FakeSink, value: str) -> None:
    assert client.post("/webhooks/shopee", content=BODY, headers={"Authorization": value}).status_code == 200
    assert len(sink.on(ORDERS)) == 1


def test_bad_signature_on_unusable_body_is_401_not_a_dead_letter(client: TestClient, sink: FakeSink) -> None:
    for body in (b"{", b"[" * 5000, b"\xff" * 100):
        assert post(client, body, {"Authorization": "0" * 64}).status_code == 401  # type: ignore[attr-defined]
    assert sink.sent == []


def test_replayed_old_push_is_2xx_both_times_with_the_same_event_id(client: TestClient, sink: FakeSink) -> None:
    body = real_push(727720655, "220810QSK8S7BX", "PROCESSED", 1_660_123_127)  # a push from 2022
    assert [post(client, body).status_code for _ in range(2)] == [200, 200]  # type: ignore[attr-defined]
    first, second = (orjson.loads(v) for _, v in sink.on(ORDERS))
    assert first["event_id"] == second["event_id"]


def test_ten_mib_body_is_413(client: TestClient, sink: FakeSink) -> None:
    body = b"x" * (10 * MIB)
    r = post(client, body)
    assert r.status_code == 413 and sink.sent == []  # type: ignore[attr-defined]


def test_ten_mib_chunked_body_without_content_length_is_413(client: TestClient, sink: FakeSink) -> None:
    body = b"[" * (10 * MIB)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    r = client.post("/webhooks/shopee", content=chunks(), headers=signed_headers(body))
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413 and sink.sent == []


def test_body_exactly_at_the_limit_is_read(sink: FakeSink) -> None:
    app = create_app(make_settings(ingest_max_body_bytes=1000), sink, load_pipeline(DEFAULT_TRANSFORMS.split(",")))
    push = real_push(1, "EDGE")
    body = push[:-1] + b" " * (1000 - len(push)) + b"}"
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.post("/webhooks/shopee", content=body, headers=signed_headers(body)).status_code == 200
        over = body + b" "
        assert c.post("/webhooks/shopee", content=over, headers=signed_headers(over)).status_code == 413
    assert len(sink.on(ORDERS)) == 1


def test_unusable_body_near_the_limit_becomes_a_dead_letter_kafka_can_take(client: TestClient, sink: FakeSink) -> None:
    """A 1 MiB dead letter, base64-encoded, would exceed Kafka's 1 MiB record limit: 503 for ever."""
    body = b"{" + b" " * (MIB - 2) + b"x"
    assert post(client, body).status_code == 200  # type: ignore[attr-defined]
    [(key, value)] = sink.on(DLQ)
    assert len(key) + len(value) < 1_000_000
    letter = DeadLetter.decode(value)
    assert letter.reason == "invalid_json" and f"of {MIB} bytes" in letter.detail
    assert body.startswith(letter.raw_body() or b"<none>")
