"""Token expiry, refresh rotation, single-use refresh tokens and the 5-minute grace (docs/contract.md#api-calls)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from service.sandbox.api import create_sandbox_app
from service.sandbox.client import public_query, shop_query
from service.sandbox.config import AUTH_REFRESH_PATH, ORDER_DETAIL_PATH, SandboxConfig
from service.sandbox.state import SandboxState
from service.sandbox.tokens import initial_tokens
from tests.fakes import FakeClock

KEY = "sandbox-test-key"
PARTNER = 777
SHOP = 200000
TTL = 60.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def client(clock: FakeClock) -> TestClient:
    config = SandboxConfig(partner_id=PARTNER, partner_key=KEY, token_ttl_seconds=TTL, token_grace_seconds=300)
    return TestClient(create_sandbox_app(SandboxState(config, clock)))


def detail(client: TestClient, clock: FakeClock, token: str) -> Any:
    params = shop_query(PARTNER, KEY, ORDER_DETAIL_PATH, int(clock.now), token, SHOP)
    return client.get(ORDER_DETAIL_PATH, params={**params, "order_sn_list": "X1"})


def refresh(client: TestClient, clock: FakeClock, refresh_token: str, **body: Any) -> Any:
    params = public_query(PARTNER, KEY, AUTH_REFRESH_PATH, int(clock.now))
    payload = {"refresh_token": refresh_token, "partner_id": PARTNER, "shop_id": SHOP, **body}
    return client.post(AUTH_REFRESH_PATH, params=params, json=payload)


def test_initial_token_works_until_its_ttl(client: TestClient, clock: FakeClock) -> None:
    access, _ = initial_tokens(KEY, SHOP)
    assert detail(client, clock, access).status_code == 200
    clock.now += TTL
    response = detail(client, clock, access)
    assert response.status_code == 403
    assert response.json()["error"] == "invalid_acceess_token"
    assert response.json()["message"] == "Invalid access_token."


def test_refresh_returns_a_new_pair(client: TestClient, clock: FakeClock) -> None:
    access, refresh_token = initial_tokens(KEY, SHOP)
    body = refresh(client, clock, refresh_token).json()
    assert body["error"] == "" and body["message"] == "" and body["request_id"]
    assert body["expire_in"] == int(TTL)
    assert body["access_token"] not in (access, "") and body["refresh_token"] not in (refresh_token, "")
    assert detail(client, clock, body["access_token"]).status_code == 200


def test_refresh_token_works_once(client: TestClient, clock: FakeClock) -> None:
    _, refresh_token = initial_tokens(KEY, SHOP)
    assert refresh(client, clock, refresh_token).status_code == 200
    again = refresh(client, clock, refresh_token)
    assert again.status_code == 400
    assert again.json()["error"] == "error_param"
    assert "refresh_token" in again.json()["message"]


def test_new_refresh_token_rotates_again(client: TestClient, clock: FakeClock) -> None:
    _, refresh_token = initial_tokens(KEY, SHOP)
    second = refresh(client, clock, refresh_token).json()["refresh_token"]
    third = refresh(client, clock, second).json()
    assert third["error"] == ""
    assert detail(client, clock, third["access_token"]).status_code == 200


def test_old_access_token_has_five_minutes_of_grace(client: TestClient, clock: FakeClock) -> None:
    config = SandboxConfig(partner_id=PARTNER, partner_key=KEY, token_ttl_seconds=14400, token_grace_seconds=300)
    client = TestClient(create_sandbox_app(SandboxState(config, clock)))
    access, refresh_token = initial_tokens(KEY, SHOP)
    assert refresh(client, clock, refresh_token).status_code == 200
    clock.now += 299
    assert detail(client, clock, access).status_code == 200
    clock.now += 1
    assert detail(client, clock, access).json()["error"] == "invalid_acceess_token"


def test_refresh_token_expires_after_thirty_days(client: TestClient, clock: FakeClock) -> None:
    _, refresh_token = initial_tokens(KEY, SHOP)
    clock.now += 30 * 86400
    assert refresh(client, clock, refresh_token).json()["error"] == "error_param"


def test_refresh_with_wrong_sign_is_error_sign(client: TestClient, clock: FakeClock) -> None:
    _, refresh_token = initial_tokens(KEY, SHOP)
    params = {**public_query(PARTNER, KEY, AUTH_REFRESH_PATH, int(clock.now)), "sign": "ab" * 32}
    response = client.post(
        AUTH_REFRESH_PATH, params=params, json={"refresh_token": refresh_token, "partner_id": PARTNER, "shop_id": SHOP}
    )
    assert response.json()["error"] == "error_sign"
    assert refresh(client, clock, refresh_token).status_code == 200  # the refused call did not consume it


def test_refresh_token_of_another_shop_is_rejected(client: TestClient, clock: FakeClock) -> None:
    _, other = initial_tokens(KEY, SHOP + 1)
    assert refresh(client, clock, other).json()["error"] == "error_param"


def test_refresh_body_must_name_partner_and_shop(client: TestClient, clock: FakeClock) -> None:
    _, refresh_token = initial_tokens(KEY, SHOP)
    assert refresh(client, clock, refresh_token, shop_id="abc").json()["error"] == "error_param"
    assert refresh(client, clock, refresh_token, partner_id=1).json()["error"] == "error_param"


def test_expire_token_endpoint_forces_a_refresh(client: TestClient, clock: FakeClock) -> None:
    access, _ = initial_tokens(KEY, SHOP)
    assert client.post(f"/sandbox/shops/{SHOP}/expire-token").status_code == 200
    assert detail(client, clock, access).json()["error"] == "invalid_acceess_token"


def test_shops_endpoint_reports_current_tokens(client: TestClient, clock: FakeClock) -> None:
    _, refresh_token = initial_tokens(KEY, SHOP)
    new = refresh(client, clock, refresh_token).json()
    shops = {s["shop_id"]: s for s in client.get("/sandbox/shops").json()["shops"]}
    assert shops[SHOP]["access_token"] == new["access_token"]
    assert shops[SHOP]["refresh_token"] == new["refresh_token"]
    assert shops[SHOP]["access_token_expires_at"] == clock.now + TTL
