"""Property-based fuzzing of the ingest endpoint.

In process (a fake sink, many examples): whatever a signed body holds, the answer is an
empty 200 (or 413 over the limit) and the push ends up in exactly one place: one record,
one dead letter or one counted skip. Without the right signature: 401 and nothing stored.
Against the real server and broker: test_ingest_fuzz_real_server.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from service.ingest.app import create_app
from service.ingest.metrics import IngestMetrics
from service.records import DeadLetter
from service.settings import DEFAULT_TRANSFORMS
from tests.fakes import FakeSink, environment_without_settings
from tests.pushes import signed_headers
from tests.test_ingest_app import DLQ, ORDERS, make_settings
from transforms import load_pipeline

LIMIT = 4096  # a small body limit, so that 413 is reached by generated bodies too
BUDGET = 2.0
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STATUSES = ["UNPAID", "READY_TO_SHIP", "PROCESSED", "RETRY_SHIP", "SHIPPED", "IN_CANCEL", "CANCELLED", "COMPLETED"]


class Gateway:
    """The in-process app with a fake sink, shared by the examples of one module."""

    def __init__(self) -> None:
        self.sink = FakeSink()
        self.metrics = IngestMetrics()
        settings_ = make_settings(ingest_max_body_bytes=LIMIT, ingest_response_budget_seconds=BUDGET)
        app = create_app(settings_, self.sink, load_pipeline(DEFAULT_TRANSFORMS.split(",")), metrics=self.metrics)
        self.client = TestClient(app, raise_server_exceptions=False)

    def skips(self) -> float:
        return self.metrics.registry.get_sample_value("gateway_ingest_requests_total", {"outcome": "skipped"}) or 0.0

    def post(self, body: bytes, headers: Any) -> tuple[httpx.Response, float]:
        """Post one push with an empty sink; returns (response, skips counted by it)."""
        self.sink.sent.clear()
        before = self.skips()
        r = self.client.post("/webhooks/shopee", content=body, headers=headers)
        assert r.status_code != 500
        return r, self.skips() - before


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with environment_without_settings():
        gw = Gateway()
    with gw.client:
        yield gw


def assert_one_outcome(gw: Gateway, body: bytes, r: httpx.Response, skipped: float) -> None:
    """An accepted signed push is in exactly one place: a record, a dead letter or a skip."""
    if len(body) > LIMIT:
        assert r.status_code == 413 and gw.sink.sent == [] and skipped == 0
        return
    assert r.status_code == 200 and r.content == b""
    orders, letters = gw.sink.on(ORDERS), gw.sink.on(DLQ)
    assert (len(orders), len(letters), skipped) in {(1, 0, 0), (0, 1, 0), (0, 0, 1)}
    event("forwarded" if orders else "dead letter" if letters else "skipped")
    if orders:
        [(key, value)] = orders
        record = orjson.loads(value)
        shop_id, order_sn = record["shop_id"], record["order_sn"]
        assert shop_id.isascii() and shop_id.isdigit() and key == f"shop-{shop_id}".encode()
        assert 0 < len(order_sn) <= 64 and order_sn.isprintable()
        assert record["platform"] == "shopee" and record["event_id"]
    if letters:
        [(_, value)] = letters
        letter = DeadLetter.decode(value)
        assert letter.source == "ingest" and letter.reason and letter.raw_body() == body


# -- (a) arbitrary bytes, signed --------------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=LIMIT + 200))
def test_signed_arbitrary_bytes_end_up_in_exactly_one_place(gateway: Gateway, body: bytes) -> None:
    r, skipped = gateway.post(body, signed_headers(body))
    assert_one_outcome(gateway, body, r, skipped)


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=64).map(lambda b: b'{"code":3,"shop_id":1,"data":{"ordersn":"' + b + b'"}}'),
        st.integers(0, 3000).map(lambda n: b"[" * n + b"]" * n),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
)
def test_signed_near_json_bytes_end_up_in_exactly_one_place(gateway: Gateway, body: bytes) -> None:
    r, skipped = gateway.post(body, signed_headers(body))
    assert_one_outcome(gateway, body, r, skipped)


# -- (b) JSON-ish dicts, mixing the real shape with random types -------------------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=80),
)
json_value = st.recursive(
    json_leaf,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
digits = st.text(alphabet="0123456789", min_size=1, max_size=20)
shop_ids = st.one_of(st.integers(0, 2**64 - 1), digits, json_value, st.text(max_size=25))
order_sns = st.one_of(st.text(alphabet="0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=1, max_size=64), json_value)
statuses = st.one_of(st.sampled_from(STATUSES), st.sampled_from(STATUSES).map(str.lower), json_value)
codes = st.one_of(st.sampled_from([0, 1, 2, 3, 3, 3, 4, 12, 15]), st.just("3"), json_value)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, st.just(_ABSENT))


_ABSENT = object()


@st.composite
def pushes(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, strategy in (
        ("ordersn", order_sns),
        ("status", statuses),
        ("update_time", st.one_of(st.integers(0, 2**53), json_value)),
        ("items", json_value),
    ):
        value = draw(maybe(strategy))
        if value is not _ABSENT:
            data[name] = value
    body: dict[str, Any] = draw(st.dictionaries(st.text(max_size=10), json_value, max_size=3))
    for name, strategy in (
        ("code", codes),
        ("shop_id", shop_ids),
        ("timestamp", json_value),
        ("msg_id", st.one_of(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32), json_value)),
        ("data", st.one_of(st.just(data), json_value)),
    ):
        value = draw(maybe(strategy))
        if value is not _ABSENT:
            body[name] = value
    if draw(st.booleans()):  # the legacy flat shape
        body.pop("code", None)
        body["order_sn"], body["order_status"] = data.get("ordersn"), data.get("status")
    return body


@FUZZ
@given(push=pushes())
def test_signed_json_pushes_end_up_in_exactly_one_place(gateway: Gateway, push: dict[str, Any]) -> None:
    body = orjson.dumps(push)
    r, skipped = gateway.post(body, signed_headers(body))
    assert_one_outcome(gateway, body, r, skipped)


@FUZZ
@given(
    shop_id=st.one_of(st.integers(0, 2**64 - 1), digits),
    order_sn=st.text(alphabet="0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=1, max_size=64),
    status=st.sampled_from(STATUSES[1:]),
    update_time=st.integers(0, 2**53 - 1),
    extra=st.dictionaries(st.text(max_size=10).filter(lambda k: k not in {"code", "shop_id", "data"}), json_value),
)
def test_usable_push_is_forwarded_whatever_else_it_carries(
    gateway: Gateway, shop_id: int | str, order_sn: str, status: str, update_time: int, extra: dict[str, Any]
) -> None:
    data = {"ordersn": order_sn, "status": status, "update_time": update_time, "items": []}
    body = orjson.dumps({**extra, "code": 3, "shop_id": shop_id, "data": data})
    assume(len(body) <= LIMIT)
    r, _ = gateway.post(body, signed_headers(body))
    assert r.status_code == 200 and r.content == b"" and gateway.sink.on(DLQ) == []
    [(key, value)] = gateway.sink.on(ORDERS)
    record = orjson.loads(value)
    assert (record["shop_id"], record["order_sn"], record["order_status"]) == (str(shop_id), order_sn, status)
    assert record["update_time"] == update_time and key == f"shop-{shop_id}".encode()


# -- (c) and (d): signatures -------------------------------------------------------------

header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


@FUZZ
@given(
    body=st.binary(max_size=LIMIT + 200),
    authorization=st.one_of(
        st.none(),
        header_text,
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.binary(max_size=64).map(lambda b: signed_headers(b)["Authorization"]),  # another body's
        st.just("CORRECT"),
    ),
)
def test_only_the_right_signature_gets_in(gateway: Gateway, body: bytes, authorization: str | None) -> None:
    correct = signed_headers(body)["Authorization"]
    if authorization == "CORRECT":
        authorization = correct
    headers = {} if authorization is None else {"Authorization": authorization}
    r, skipped = gateway.post(body, headers)
    if len(body) > LIMIT:
        assert r.status_code == 413 and gateway.sink.sent == []
    elif authorization is not None and authorization.strip(" \t") == correct:
        assert_one_outcome(gateway, body, r, skipped)
    else:
        assert r.status_code == 401 and gateway.sink.sent == [] and skipped == 0


@st.composite
def mutated(draw: st.DrawFn, signature: str) -> str:
    kind = draw(st.sampled_from(["replace", "case", "truncate", "delete", "insert", "append"]))
    i = draw(st.integers(0, len(signature) - 1))
    if kind == "replace":
        char = draw(st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(lambda c: c != signature[i]))
        return signature[:i] + char + signature[i + 1 :]
    if kind == "case":
        letters = [j for j, c in enumerate(signature) if c.isalpha()]
        j = draw(st.sampled_from(letters))
        return signature[:j] + signature[j].upper() + signature[j + 1 :]
    if kind == "truncate":
        return signature[:i]
    if kind == "delete":
        return signature[:i] + signature[i + 1 :]
    char = draw(st.characters(min_codepoint=0x21, max_codepoint=0x7E))
    return signature[:i] + char + signature[i:] if kind == "insert" else signature + char


@FUZZ
@given(data=st.data(), body=st.binary(max_size=512))
def test_any_single_change_to_a_valid_signature_is_401(gateway: Gateway, data: st.DataObject, body: bytes) -> None:
    correct = signed_headers(body)["Authorization"]
    bad = data.draw(mutated(correct))
    assert bad != correct
    r, skipped = gateway.post(body, {"Authorization": bad})
    assert r.status_code == 401 and gateway.sink.sent == [] and skipped == 0
