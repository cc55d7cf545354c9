"""Fault injection: per-shop rate limit (429), error_server and bare 503 fractions, latency."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from service.sandbox.api import create_sandbox_app
from service.sandbox.client import shop_query
from service.sandbox.config import ORDER_DETAIL_PATH, Faults, SandboxConfig
from service.sandbox.tokens import initial_tokens
from tests.fakes import FakeClock

KEY = "fault-key"
PARTNER = 99
SHOP_A, SHOP_B = 300001, 300002


def make(clock: FakeClock, **faults: Any) -> TestClient:
    config = SandboxConfig(partner_id=PARTNER, partner_key=KEY, faults=Faults().updated(faults), seed=7)
    return TestClient(create_sandbox_app(config, clock=clock, sleep=clock.sleep))


def call(client: TestClient, clock: FakeClock, shop: int) -> Any:
    params = shop_query(PARTNER, KEY, ORDER_DETAIL_PATH, int(clock.now), initial_tokens(KEY, shop)[0], shop)
    return client.get(ORDER_DETAIL_PATH, params={**params, "order_sn_list": "O1"})


def test_rate_limit_rejects_the_shop_over_it_and_spares_others() -> None:
    clock = FakeClock(1_700_000_040.0)
    client = make(clock, rate_limit_per_minute=3)
    assert [call(client, clock, SHOP_A).status_code for _ in range(3)] == [200, 200, 200]
    over = call(client, clock, SHOP_A)
    assert over.status_code == 429
    assert over.json()["error"] == "error_too_many_request"
    assert over.json()["message"] == "too many requests"
    assert over.headers["Retry-After"] == "60"
    assert call(client, clock, SHOP_B).status_code == 200


def test_latency_is_waited_out_with_the_injected_sleep_before_answering() -> None:
    clock = FakeClock(1_700_000_040.0)
    client = make(clock, latency_ms=800)
    assert call(client, clock, SHOP_A).status_code == 200
    assert clock.sleeps == [0.8]
    client.post("/sandbox/faults", json={"latency_ms": 0})
    assert call(client, clock, SHOP_A).status_code == 200
    assert clock.sleeps == [0.8]


def test_rate_limit_window_slides_with_the_clock() -> None:
    clock = FakeClock(1_700_000_040.0)
    client = make(clock, rate_limit_per_minute=2)
    call(client, clock, SHOP_A)
    clock.now += 30
    call(client, clock, SHOP_A)
    clock.now += 10
    assert call(client, clock, SHOP_A).headers["Retry-After"] == "20"
    clock.now += 20
    assert call(client, clock, SHOP_A).status_code == 200


def test_error_rate_is_roughly_honoured_and_seeded() -> None:
    def run() -> list[int]:
        clock = FakeClock(1_700_000_040.0)
        client = make(clock, error_rate=0.3)
        return [call(client, clock, SHOP_A).status_code for _ in range(400)]

    codes = run()
    errors = codes.count(500)
    assert 80 <= errors <= 160
    assert set(codes) == {200, 500}
    assert run() == codes  # same seed, same answers


def test_error_server_uses_shopee_envelope() -> None:
    clock = FakeClock(1_700_000_040.0)
    response = call(make(clock, error_rate=1.0), clock, SHOP_A)
    assert response.status_code == 500
    assert response.json()["error"] == "error_server"


def test_unavailable_rate_answers_bare_503() -> None:
    clock = FakeClock(1_700_000_040.0)
    client = make(clock, unavailable_rate=0.5)
    codes = [call(client, clock, SHOP_A) for _ in range(200)]
    bare = [r for r in codes if r.status_code == 503]
    assert 70 <= len(bare) <= 130
    assert all(r.headers["content-type"].startswith("text/plain") for r in bare)


def test_faults_can_change_at_run_time() -> None:
    clock = FakeClock(1_700_000_040.0)
    client = make(clock)
    assert call(client, clock, SHOP_A).status_code == 200
    assert client.post("/sandbox/faults", json={"error_rate": 1.0}).json()["error_rate"] == 1.0
    assert call(client, clock, SHOP_A).status_code == 500
    client.post("/sandbox/faults", json={"error_rate": 0})
    assert call(client, clock, SHOP_A).status_code == 200
    assert client.post("/sandbox/faults", json={"error_rate": 2}).status_code == 400
    assert client.post("/sandbox/faults", json={"bogus": 1}).status_code == 400


@pytest.mark.parametrize("bad", [{"latency_ms": -1}, {"unavailable_rate": 1.5}, {"rate_limit_per_minute": True}])
def test_invalid_fault_values_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Faults().updated(bad)
