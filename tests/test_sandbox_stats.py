"""The sandbox's stats: calls per shop per minute, rolling 60 s maximum, errors, refreshes."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from service.sandbox.api import create_sandbox_app
from service.sandbox.client import public_query, shop_query
from service.sandbox.config import AUTH_REFRESH_PATH, ORDER_DETAIL_PATH, Faults, SandboxConfig
from service.sandbox.stats import max_in_window
from service.sandbox.tokens import initial_tokens
from tests.fakes import FakeClock

KEY = "stats-key"
PARTNER = 5
SHOP_A, SHOP_B = 400001, 400002
MINUTE = 1_700_000_040.0  # a whole minute


def make(clock: FakeClock, **faults: Any) -> TestClient:
    config = SandboxConfig(partner_id=PARTNER, partner_key=KEY, faults=Faults().updated(faults))
    return TestClient(create_sandbox_app(config, clock=clock))


def call(client: TestClient, clock: FakeClock, shop: int, sns: str = "O1,O2") -> Any:
    params = shop_query(PARTNER, KEY, ORDER_DETAIL_PATH, int(clock.now), initial_tokens(KEY, shop)[0], shop)
    return client.get(ORDER_DETAIL_PATH, params={**params, "order_sn_list": sns})


def test_max_in_window_counts_any_sixty_second_span() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([0, 59.9, 60, 119.9]) == 2
    assert max_in_window([50, 55, 61, 65, 70, 130]) == 5


def test_stats_match_the_calls_made() -> None:
    clock = FakeClock(MINUTE)
    client = make(clock)
    for offset in (0, 15, 50):  # minute one
        clock.now = MINUTE + offset
        call(client, clock, SHOP_A)
    for offset in (65, 70):  # minute two, within 60 s of the third call
        clock.now = MINUTE + offset
        call(client, clock, SHOP_A)
    call(client, clock, SHOP_B, sns="O1,O2,O3")
    call(client, clock, SHOP_B, sns="")  # error_param
    stats = client.get("/sandbox/stats").json()
    a, b = stats["shops"][str(SHOP_A)], stats["shops"][str(SHOP_B)]
    assert a["calls"] == 5
    assert a["calls_per_minute"] == {str(int(MINUTE)): 3, str(int(MINUTE) + 60): 2}
    assert a["max_calls_rolling_60s"] == 4  # the calls at +15, +50, +65, +70
    assert a["order_sns_requested"] == 10
    assert b["calls"] == 2 and b["order_sns_requested"] == 3
    assert b["errors"] == {"error_param": 1}
    assert stats["totals"]["calls"] == 7
    assert stats["totals"]["errors"] == {"error_param": 1}


def test_stats_count_rate_limit_rejections_and_refreshes() -> None:
    clock = FakeClock(MINUTE)
    client = make(clock, rate_limit_per_minute=1)
    call(client, clock, SHOP_A)
    call(client, clock, SHOP_A)
    _, refresh_token = initial_tokens(KEY, SHOP_A)
    params = public_query(PARTNER, KEY, AUTH_REFRESH_PATH, int(clock.now))
    client.post(
        AUTH_REFRESH_PATH,
        params=params,
        json={"refresh_token": refresh_token, "partner_id": PARTNER, "shop_id": SHOP_A},
    )
    shop = client.get("/sandbox/stats").json()["shops"][str(SHOP_A)]
    assert shop["rate_limited"] == 1
    assert shop["errors"] == {"error_too_many_request": 1}
    assert shop["token_refreshes"] == 1


def test_reset_stats_starts_over() -> None:
    clock = FakeClock(MINUTE)
    client = make(clock)
    call(client, clock, SHOP_A)
    assert client.post("/sandbox/reset-stats").status_code == 200
    stats = client.get("/sandbox/stats").json()
    assert stats["shops"] == {} and stats["totals"]["calls"] == 0
