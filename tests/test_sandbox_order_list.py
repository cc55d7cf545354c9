"""The sandbox's get_order_list follows SPEC 4.6: 15-day windows, page sizes, cursor, one status."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from service.sandbox.api import create_sandbox_app
from service.sandbox.client import shop_query
from service.sandbox.config import ORDER_LIST_PATH, SandboxConfig
from service.sandbox.state import SandboxState

KEY = "order-list-key"
PARTNER = 12
SHOP = 600001
NOW = 1_700_000_000
DAY = 86400


def setup(orders: int = 0, status: str = "SHIPPED") -> tuple[TestClient, str]:
    state = SandboxState(SandboxConfig(partner_id=PARTNER, partner_key=KEY, initial_shops=(SHOP,)), lambda: NOW)
    for i in range(orders):
        state.orders.register(SHOP, f"S{i:04d}", status if i % 2 else "PROCESSED", NOW - DAY + i)
    return TestClient(create_sandbox_app(state)), state.tokens.current(SHOP).access_token


def order_list(client: TestClient, token: str, **params: Any) -> Any:
    query = {
        **shop_query(PARTNER, KEY, ORDER_LIST_PATH, NOW, token, SHOP),
        "time_range_field": "update_time",
        "time_from": NOW - 2 * DAY,
        "time_to": NOW,
        "page_size": 100,
        **params,
    }
    return client.get(ORDER_LIST_PATH, params={k: v for k, v in query.items() if v is not None}).json()


def test_a_window_of_exactly_15_days_is_accepted_and_one_second_more_is_not() -> None:
    client, token = setup()
    assert order_list(client, token, time_from=NOW - 15 * DAY)["error"] == ""
    answer = order_list(client, token, time_from=NOW - 15 * DAY - 1)
    assert answer["error"] == "order.order_list_invalid_time"
    assert order_list(client, token, time_from=NOW + 1)["error"] == "order.order_list_invalid_time"


def test_page_size_must_be_1_to_100() -> None:
    client, token = setup(3)
    assert order_list(client, token, page_size=0)["error"] == "error_param"
    assert order_list(client, token, page_size=101)["error"] == "error_param"
    assert order_list(client, token, page_size=None)["error"] == "error_param"
    assert len(order_list(client, token, page_size=1)["response"]["order_list"]) == 1


def test_cursor_pages_through_every_order_once() -> None:
    client, token = setup(250)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        response = order_list(client, token, cursor=cursor)["response"]
        pages += 1
        seen += [o["order_sn"] for o in response["order_list"]]
        if not response["more"]:
            assert response["next_cursor"] == ""
            break
        cursor = response["next_cursor"]
        assert cursor
    assert pages == 3
    assert seen == [f"S{i:04d}" for i in range(250)]


def test_a_bad_cursor_is_error_param() -> None:
    client, token = setup(1)
    assert order_list(client, token, cursor="not-a-cursor")["error"] == "error_param"


def test_one_status_filters_and_the_optional_field_adds_statuses() -> None:
    client, token = setup(10)
    plain = order_list(client, token, order_status="SHIPPED")["response"]["order_list"]
    assert plain == [{"order_sn": f"S{i:04d}"} for i in range(1, 10, 2)]
    with_status = order_list(client, token, response_optional_fields="order_status")["response"]["order_list"]
    assert {o["order_status"] for o in with_status} == {"SHIPPED", "PROCESSED"}
    assert order_list(client, token, order_status="SHIPPED,PROCESSED")["error"] == "error_param"


def test_only_the_window_and_the_time_field_count() -> None:
    client, token = setup(10)
    answer = order_list(client, token, time_from=NOW - DAY, time_to=NOW - DAY + 4)
    assert [o["order_sn"] for o in answer["response"]["order_list"]] == [f"S{i:04d}" for i in range(5)]
    assert order_list(client, token, time_range_field="pay_time")["error"] == "error_param"


def test_order_list_needs_a_shop_level_sign() -> None:
    client, token = setup(1)
    assert order_list(client, token, sign="00" * 32)["error"] == "error_sign"
