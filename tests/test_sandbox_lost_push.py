"""Lost pushes: fetched 100 at a time with get_lost_push_message, acknowledged by id."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.testclient import TestClient

from service.sandbox.api import create_sandbox_app
from service.sandbox.client import public_query
from service.sandbox.config import CONFIRM_LOST_PUSH_PATH, LOST_PUSH_PATH, SandboxConfig
from service.sandbox.state import SandboxState
from tests.fakes import FakeClock

KEY = "lost-key"
PARTNER = 11
NOW = 1_700_000_000.0


def fetch(client: TestClient, clock: FakeClock) -> Any:
    response = client.get(LOST_PUSH_PATH, params=public_query(PARTNER, KEY, LOST_PUSH_PATH, int(clock.now)))
    assert response.status_code == 200, response.text
    return response.json()


def confirm(client: TestClient, clock: FakeClock, last: Any) -> Any:
    params = public_query(PARTNER, KEY, CONFIRM_LOST_PUSH_PATH, int(clock.now))
    return client.post(CONFIRM_LOST_PUSH_PATH, params=params, json={"last_message_id": last})


def setup(count: int) -> tuple[TestClient, FakeClock]:
    clock = FakeClock(NOW)
    state = SandboxState(SandboxConfig(partner_id=PARTNER, partner_key=KEY), clock)
    client = TestClient(create_sandbox_app(state))
    pushes = [
        {
            "shop_id": 500000 + i % 3,
            "code": 3,
            "timestamp": 1_699_990_000 + i,
            "data": {"ordersn": f"L{i}", "status": "PROCESSED"},
        }
        for i in range(count)
    ]
    assert client.post("/sandbox/lost-pushes", json={"pushes": pushes}).json()["stored"] == count
    return client, clock


def test_lost_pushes_page_by_100_and_confirm() -> None:
    client, clock = setup(230)
    seen: list[str] = []
    pages = 0
    while True:
        body = fetch(client, clock)["response"]
        items = body["push_message_list"]
        if not items:
            break
        pages += 1
        assert len(items) <= 100
        seen += [orjson.loads(item["data"])["ordersn"] for item in items]
        assert confirm(client, clock, body["last_message_id"]).json()["error"] == ""
        if not body["has_next_page"]:
            assert fetch(client, clock)["response"]["push_message_list"] == []
            break
    assert pages == 3
    assert seen == [f"L{i}" for i in range(230)]


def test_lost_push_items_carry_the_original_envelope_fields() -> None:
    client, clock = setup(1)
    item = fetch(client, clock)["response"]["push_message_list"][0]
    assert item["shop_id"] == 500000 and item["code"] == 3 and item["timestamp"] == 1_699_990_000
    assert isinstance(item["data"], str)
    assert orjson.loads(item["data"]) == {"ordersn": "L0", "status": "PROCESSED"}


def test_unconfirmed_pushes_are_fetched_again() -> None:
    client, clock = setup(5)
    first = fetch(client, clock)["response"]
    assert fetch(client, clock)["response"] == first
    confirm(client, clock, 2)
    assert len(fetch(client, clock)["response"]["push_message_list"]) == 3


def test_lost_pushes_are_kept_three_days() -> None:
    client, clock = setup(2)
    clock.now += 3 * 86400
    assert fetch(client, clock)["response"]["push_message_list"] == []


def test_lost_push_calls_need_a_valid_public_sign() -> None:
    client, clock = setup(1)
    params = {**public_query(PARTNER, KEY, LOST_PUSH_PATH, int(clock.now)), "sign": "00" * 32}
    assert client.get(LOST_PUSH_PATH, params=params).json()["error"] == "error_sign"
    assert confirm(client, clock, "x").json()["error"] == "error_param"
