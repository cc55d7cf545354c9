"""The sandbox's get_order_detail: signing, validation, envelope and order fields (docs/contract.md#api-calls)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from service.sandbox.api import create_sandbox_app
from service.sandbox.client import shop_query
from service.sandbox.config import ORDER_DETAIL_PATH, SandboxConfig
from service.sandbox.state import SandboxState
from service.sandbox.tokens import initial_tokens
from service.signing import api_sign
from tests.fakes import FakeClock

KEY = "test_partner_key_do_not_use"
PARTNER = 2001887
SHOP = 100000
NOW = 1_700_000_000.0


@pytest.fixture
def state() -> SandboxState:
    return SandboxState(SandboxConfig(partner_id=PARTNER, partner_key=KEY, seed=1), FakeClock(NOW))


@pytest.fixture
def client(state: SandboxState) -> TestClient:
    return TestClient(create_sandbox_app(state))


def detail(client: TestClient, sns: list[str], *, shop: int = SHOP, token: str | None = None, **over: Any) -> Any:
    access = token if token is not None else initial_tokens(KEY, shop)[0]
    params: dict[str, str] = shop_query(PARTNER, KEY, ORDER_DETAIL_PATH, int(NOW), access, shop)
    params["order_sn_list"] = ",".join(sns)
    params.update(over)
    return client.get(ORDER_DETAIL_PATH, params=params)


def test_spec_shop_level_vector() -> None:
    base_sign = api_sign(
        KEY.encode(),
        2001887,
        "/api/v2/order/get_order_detail",
        1655714431,
        "59777174636562737266615546704c6d",
        14701711,
    )
    assert base_sign == "1e0c93d973b461f5b5616fe614391840ecb3b2946020bbe4c6f8d8574ab29d75"


def test_spec_public_vector() -> None:
    sign = api_sign(KEY.encode(), 2001887, "/api/v2/auth/access_token/get", 1655714431)
    assert sign == "5612143359e183e9f2ee2d93c673c4c768576b75a948495402dc04bea9fa6d21"


def test_sandbox_accepts_the_spec_vector_request() -> None:
    state = SandboxState(SandboxConfig(partner_id=2001887, partner_key=KEY), FakeClock(1655714431.0))
    state.tokens.add_shop(14701711)
    state.tokens._access["59777174636562737266615546704c6d"] = state.tokens._access[
        state.tokens.current(14701711).access_token
    ]
    params = {
        "partner_id": "2001887",
        "timestamp": "1655714431",
        "access_token": "59777174636562737266615546704c6d",
        "shop_id": "14701711",
        "sign": "1e0c93d973b461f5b5616fe614391840ecb3b2946020bbe4c6f8d8574ab29d75",
        "order_sn_list": "220810QSK8S7BX",
    }
    response = TestClient(create_sandbox_app(state)).get(ORDER_DETAIL_PATH, params=params)
    assert response.status_code == 200, response.text
    assert response.json()["response"]["order_list"][0]["order_sn"] == "220810QSK8S7BX"


def test_detail_returns_shopee_envelope_and_fields(client: TestClient) -> None:
    response = detail(
        client, ["A1", "A2"], response_optional_fields="buyer_user_id,item_list,total_amount,pay_time,package_list"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["error"] == "" and body["message"] == "" and len(body["request_id"]) == 32
    orders = body["response"]["order_list"]
    assert [o["order_sn"] for o in orders] == ["A1", "A2"]
    for order in orders:
        for name in (
            "region",
            "currency",
            "cod",
            "order_status",
            "create_time",
            "update_time",
            "days_to_ship",
            "ship_by_date",
            "message_to_seller",
        ):
            assert name in order
        for name in ("buyer_user_id", "item_list", "total_amount", "pay_time", "package_list"):
            assert name in order
        assert order["order_status"] == "READY_TO_SHIP"
        assert "recipient_address" not in order  # not requested


def test_detail_is_deterministic(client: TestClient) -> None:
    first = detail(client, ["SAME"], response_optional_fields="item_list,total_amount").json()["response"]
    second = detail(client, ["SAME"], response_optional_fields="item_list,total_amount").json()["response"]
    assert first == second


def test_registered_order_reports_its_latest_state(client: TestClient, state: SandboxState) -> None:
    state.orders.register(SHOP, "REG1", "SHIPPED", 1_699_999_000)
    state.orders.register(SHOP, "REG1", "PROCESSED", 1_699_998_000)  # older: ignored
    order = detail(client, ["REG1"]).json()["response"]["order_list"][0]
    assert (order["order_status"], order["update_time"]) == ("SHIPPED", 1_699_999_000)


def test_wrong_sign_is_error_sign(client: TestClient) -> None:
    response = detail(client, ["A1"], sign="0" * 64)
    assert response.status_code == 403
    assert response.json()["error"] == "error_sign"


def test_stale_timestamp_is_rejected(client: TestClient) -> None:
    stale = int(NOW) - 301
    access = initial_tokens(KEY, SHOP)[0]
    sign = api_sign(KEY.encode(), PARTNER, ORDER_DETAIL_PATH, stale, access, SHOP)
    response = detail(client, ["A1"], timestamp=str(stale), sign=sign)
    assert response.status_code == 400
    assert response.json()["error"] == "error_param"


def test_wrong_partner_id_is_rejected(client: TestClient) -> None:
    assert detail(client, ["A1"], partner_id="42").json()["error"] == "error_param"


def test_wrong_access_token_is_error_auth(client: TestClient) -> None:
    response = detail(client, ["A1"], token="f" * 32)
    assert response.status_code == 403
    assert response.json() | {"request_id": ""} == {
        "request_id": "",
        "error": "error_auth",
        "message": "Invalid access_token.",
    }


def test_another_shops_token_is_error_auth(client: TestClient) -> None:
    assert detail(client, ["A1"], token=initial_tokens(KEY, SHOP + 1)[0]).json()["error"] == "error_auth"


@pytest.mark.parametrize("count", [0, 51])
def test_order_sn_count_outside_1_to_50_is_error_param(client: TestClient, count: int) -> None:
    response = detail(client, [f"SN{i}" for i in range(count)])
    assert response.status_code == 400
    assert response.json()["error"] == "error_param"


def test_fifty_order_sns_are_accepted(client: TestClient) -> None:
    response = detail(client, [f"SN{i}" for i in range(50)])
    assert len(response.json()["response"]["order_list"]) == 50


def test_unknown_sns_are_listed_in_warning(client: TestClient) -> None:
    body = detail(client, ["K1", "UNKNOWN1", "K2"]).json()
    assert [o["order_sn"] for o in body["response"]["order_list"]] == ["K1", "K2"]
    assert body["warning"] == ["UNKNOWN1"]


def test_only_unknown_sns_is_error_not_found(client: TestClient) -> None:
    response = detail(client, ["UNKNOWN1", "UNKNOWN2"])
    assert response.status_code == 404
    assert response.json()["error"] == "error_not_found"
    assert response.json()["warning"] == ["UNKNOWN1", "UNKNOWN2"]


def test_without_auto_orders_only_registered_orders_exist() -> None:
    state = SandboxState(SandboxConfig(partner_id=PARTNER, partner_key=KEY, auto_orders=False), FakeClock(NOW))
    state.orders.register(SHOP, "REG", "PROCESSED", int(NOW) - 10)
    body = detail(TestClient(create_sandbox_app(state)), ["REG", "OTHER"]).json()
    assert [o["order_sn"] for o in body["response"]["order_list"]] == ["REG"]
    assert body["warning"] == ["OTHER"]


def test_strict_shops_rejects_unregistered_shop() -> None:
    config = SandboxConfig(partner_id=PARTNER, partner_key=KEY, strict_shops=True, initial_shops=(SHOP,))
    client = TestClient(create_sandbox_app(config, clock=FakeClock(NOW)))
    assert detail(client, ["A"]).status_code == 200
    assert detail(client, ["A"], shop=SHOP + 5).json()["error"] == "error_shop"


def test_control_endpoint_sets_a_shops_tokens(client: TestClient) -> None:
    shops = [{"shop_id": SHOP, "access_token": "chosen-access", "refresh_token": "chosen-refresh"}]
    assert client.post("/sandbox/shops", json={"shops": shops}).json()["shops"][0]["access_token"] == "chosen-access"
    assert detail(client, ["A"], token="chosen-access").status_code == 200
    assert detail(client, ["A"]).json()["error"] == "invalid_acceess_token"  # the initial token was replaced


def test_control_endpoint_registers_orders(client: TestClient) -> None:
    orders = [{"shop_id": SHOP, "order_sn": "C1", "order_status": "COMPLETED", "update_time": 1_699_999_999}]
    assert client.post("/sandbox/orders", json={"orders": orders}).json()["registered"] == 1
    assert detail(client, ["C1"]).json()["response"]["order_list"][0]["order_status"] == "COMPLETED"
    assert client.post("/sandbox/orders", json={"orders": [{"shop_id": SHOP}]}).status_code == 400
