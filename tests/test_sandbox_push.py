"""The push sender: bodies, signatures and Shopee's retries as in docs/contract.md; the ledger."""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.sandbox.config import SandboxConfig
from service.sandbox.plan import PROGRESSION, Ledger, PushConfig, build_plan, push_body
from service.sandbox.push import send_pushes
from service.sandbox.state import SandboxState
from service.signing import push_signature, verify_push

KEY = "test_partner_key_do_not_use"
CALLBACK = "https://receiver.example.com/shopee/push"
SPEC_BODY = (
    b'{"data":{"items":[],"ordersn":"220810QSK8S7BX","status":"PROCESSED","completed_scenario":"",'
    b'"update_time":1660123127},"shop_id":727720655,"code":3,"timestamp":1660123127}'
)


class Receiver:
    """A webhook receiver that checks signatures and fails on demand."""

    def __init__(self, fail: Any = None, body: bytes = b"", delay: float = 0.0) -> None:
        self.fail = fail or (lambda body, seen: False)
        self.body = body
        self.delay = delay
        self.seen: Counter[bytes] = Counter()
        self.accepted: list[bytes] = []
        self.bad_signatures = 0
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        if not verify_push(KEY.encode(), CALLBACK, raw, request.headers.get("authorization")):
            self.bad_signatures += 1
            return Response(status_code=401)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.seen[raw] += 1
        if self.fail(raw, self.seen[raw]):
            return Response(b"nope", status_code=500)
        self.accepted.append(raw)
        return Response(self.body, status_code=200)

    def client(self) -> httpx.AsyncClient:
        app = Starlette(routes=[Route("/webhooks/shopee", self.handle, methods=["POST"])])
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))


def config(**over: Any) -> PushConfig:
    base: dict[str, Any] = {
        "url": "http://receiver/webhooks/shopee",
        "callback_url": CALLBACK,
        "push_key": KEY,
        "shops": 3,
        "orders": 30,
        "seed": 42,
        "time_scale": 1_000_000.0,
    }
    return PushConfig(**{**base, **over})


async def send(receiver: Receiver, cfg: PushConfig, **kwargs: Any) -> Ledger:
    async with receiver.client() as client:
        return await send_pushes(cfg, client=client, **kwargs)


def test_push_body_is_exactly_the_spec_shape() -> None:
    assert push_body(727720655, "220810QSK8S7BX", "PROCESSED", 1660123127) == SPEC_BODY


def test_push_signature_matches_the_spec_vector() -> None:
    assert (
        push_signature(KEY.encode(), CALLBACK, SPEC_BODY)
        == "e2ced245d01b8df53196f4cc0a2c209d9ad59db351c2afd03fa392a9e4981322"
    )


async def test_every_push_is_signed_and_acknowledged() -> None:
    receiver = Receiver()
    ledger = await send(receiver, config())
    assert receiver.bad_signatures == 0
    assert len(ledger.entries) == len(receiver.accepted) >= 30
    assert all(e.acknowledged and e.attempts == 1 and e.status_code == 200 for e in ledger.entries)
    shapes = {tuple(orjson.loads(b)) for b in receiver.accepted}
    assert shapes == {("data", "shop_id", "code", "timestamp")}
    assert {orjson.loads(b)["shop_id"] for b in receiver.accepted} == {100000, 100001, 100002}


async def test_wrong_push_key_gets_401_and_is_not_acknowledged() -> None:
    receiver = Receiver()
    ledger = await send(receiver, config(push_key="wrong", orders=3, retry_delays_seconds=()))
    assert receiver.bad_signatures == len(ledger.entries)
    assert all(e.status_code == 401 and not e.acknowledged and e.lost for e in ledger.entries)


async def test_failed_pushes_are_retried_until_acknowledged() -> None:
    receiver = Receiver(fail=lambda body, seen: zlib.crc32(body) % 3 == 0 and seen == 1)
    ledger = await send(receiver, config())
    retried = [e for e in ledger.entries if e.attempts > 1]
    assert retried
    assert all(e.codes == [500, 200] and e.acknowledged and not e.lost for e in retried)
    assert all(e.acknowledged for e in ledger.entries)
    assert sum(e.attempts for e in ledger.entries) == sum(receiver.seen.values())


async def test_retries_wait_like_shopee() -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    receiver = Receiver(fail=lambda body, seen: True)
    ledger = await send(receiver, config(orders=1, time_scale=10.0, cancel_fraction=0.0), sleep=fake_sleep)
    assert all(e.attempts == 4 and e.lost for e in ledger.entries)
    assert Counter(waits) == {30.0: len(ledger.entries), 180.0: len(ledger.entries), 1080.0: len(ledger.entries)}


async def test_exhausted_pushes_become_lost_pushes_in_the_sandbox() -> None:
    sandbox = SandboxState(SandboxConfig(partner_key=KEY))
    receiver = Receiver(fail=lambda body, seen: orjson.loads(body)["shop_id"] == 100001)
    ledger = await send(receiver, config(), sandbox=sandbox)
    lost = [e for e in ledger.entries if e.lost]
    assert lost and all(e.shop_id == 100001 and e.attempts == 4 and not e.acknowledged for e in lost)
    assert sandbox.lost_push_count() == len(lost)
    page, _, _ = sandbox.lost_push_page(sandbox.now())
    assert {(p.shop_id, orjson.loads(p.data)["ordersn"]) for p in page} == {(e.shop_id, e.order_sn) for e in lost}
    assert ledger.summary()["lost"] == len(lost)


async def test_a_2xx_with_a_body_is_not_an_acknowledgement() -> None:
    receiver = Receiver(body=b'{"ok":true}')
    ledger = await send(receiver, config(orders=2, retry_delays_seconds=(1.0,)))
    assert all(e.codes == [200, 200] and not e.acknowledged and e.lost for e in ledger.entries)


async def test_orders_are_registered_with_their_final_state() -> None:
    sandbox = SandboxState(SandboxConfig(partner_key=KEY, auto_orders=False))
    ledger = await send(Receiver(), config(), sandbox=sandbox)
    for (shop_id, order_sn), (status, update_time) in ledger.expected_orders().items():
        order = sandbox.orders.lookup(int(shop_id), order_sn)
        assert order is not None and (order.order_status, order.update_time) == (status, update_time)


async def test_duplicates_resend_identical_bytes() -> None:
    receiver = Receiver()
    ledger = await send(receiver, config(duplicates=0.5))
    dups = [e for e in ledger.entries if e.duplicate]
    assert len(dups) > 10
    assert sum(count - 1 for count in receiver.seen.values()) == len(dups)


async def test_concurrency_is_bounded() -> None:
    receiver = Receiver(delay=0.01)
    await send(receiver, config(concurrency=4, orders=40))
    assert 1 < receiver.max_in_flight <= 4


def test_status_progressions_are_realistic() -> None:
    plan = build_plan(config(orders=200, include_unpaid=True, cancel_fraction=0.2), now=1_700_000_000)
    by_order: dict[str, list[tuple[int, str]]] = {}
    for push in plan:
        by_order.setdefault(push.order_sn, []).append((push.update_time, push.status))
    cancelled = 0
    for steps in by_order.values():
        times = [t for t, _ in steps]
        assert times == sorted(times) and len(set(times)) == len(times)  # natural order, increasing
        statuses = [s for _, s in steps]
        assert statuses[0] == "UNPAID"
        if statuses[-1] == "CANCELLED":
            cancelled += 1
            assert statuses[1:-1] in (
                [],
                ["READY_TO_SHIP"],
                ["READY_TO_SHIP", "IN_CANCEL"],
                ["READY_TO_SHIP", "PROCESSED"],
                ["READY_TO_SHIP", "PROCESSED", "IN_CANCEL"],
            )
        else:
            assert tuple(statuses[1:]) == PROGRESSION[: len(statuses) - 1]
    assert 20 <= cancelled <= 70


def test_out_of_order_shuffles_delivery_and_no_unpaid_by_default() -> None:
    natural = build_plan(config(orders=50), now=1_700_000_000)
    shuffled = build_plan(config(orders=50, out_of_order=True), now=1_700_000_000)
    assert sorted(p.body for p in natural) == sorted(p.body for p in shuffled)
    assert [p.body for p in natural] != [p.body for p in shuffled]
    assert all(p.status != "UNPAID" for p in natural)


async def test_ledger_expected_orders_match_what_the_receiver_acknowledged() -> None:
    receiver = Receiver(fail=lambda body, seen: zlib.crc32(body) % 5 == 0)
    ledger = await send(receiver, config(include_unpaid=True, out_of_order=True, duplicates=0.2))
    latest: dict[tuple[str, str], tuple[str, int]] = {}
    for raw in receiver.accepted:
        body = orjson.loads(raw)
        data = body["data"]
        key = (str(body["shop_id"]), data["ordersn"])
        if data["status"] != "UNPAID" and (key not in latest or latest[key][1] < data["update_time"]):
            latest[key] = (data["status"], data["update_time"])
    assert ledger.expected_orders() == latest
    assert Ledger.from_json(ledger.to_json()).expected_orders() == latest
