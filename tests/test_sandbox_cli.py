"""`python -m service sandbox serve | push | demo-shops` as real processes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from service.sandbox.client import public_query, shop_query
from service.sandbox.config import LOST_PUSH_PATH, ORDER_DETAIL_PATH
from service.sandbox.plan import Ledger
from service.sandbox.tokens import initial_tokens
from tests.conftest import free_port
from tests.processes import ROOT, Process, child_env, service_argv

KEY = "cli-partner-key"
PARTNER = 2001887


def sandbox_cmd(*args: str) -> list[str]:
    return service_argv("sandbox", *args)


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    port = free_port()
    args = ["serve", "--port", str(port), "--partner-id", str(PARTNER), "--partner-key", KEY, "--shops", "2"]
    url = f"http://127.0.0.1:{port}"
    with Process("sandbox", sandbox_cmd(*args, "--seed", "1"), child_env()) as proc:
        proc.wait_http(url + "/healthz")
        yield url


def test_serve_answers_signed_order_detail(sandbox_url: str) -> None:
    access, _ = initial_tokens(KEY, 100000)
    params = shop_query(PARTNER, KEY, ORDER_DETAIL_PATH, int(time.time()), access, 100000)
    response = httpx.get(sandbox_url + ORDER_DETAIL_PATH, params={**params, "order_sn_list": "A,B"})
    assert response.status_code == 200
    assert [o["order_sn"] for o in response.json()["response"]["order_list"]] == ["A", "B"]
    shops = httpx.get(sandbox_url + "/sandbox/shops").json()["shops"]
    assert [s["shop_id"] for s in shops][:2] == [100000, 100001]


def test_demo_shops_print_matches_the_running_sandbox(sandbox_url: str) -> None:
    out = subprocess.run(
        sandbox_cmd(
            "demo-shops",
            "--shops",
            "3",
            "--shop-id-base",
            "100005",
            "--partner-id",
            str(PARTNER),
            "--partner-key",
            KEY,
            "--print",
        ),
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    shops = [orjson.loads(line) for line in out.splitlines()]
    assert [s["shop_id"] for s in shops] == [100005, 100006, 100007]
    for shop in shops:  # computed tokens work against a sandbox started separately
        params = shop_query(PARTNER, KEY, ORDER_DETAIL_PATH, int(time.time()), shop["access_token"], shop["shop_id"])
        assert httpx.get(sandbox_url + ORDER_DETAIL_PATH, params={**params, "order_sn_list": "A"}).status_code == 200


def test_push_registers_orders_and_lost_pushes(sandbox_url: str, tmp_path: Path) -> None:
    ledger_file = tmp_path / "ledger.json"
    args = ["push", "--url", sandbox_url + "/no-receiver-here", "--sandbox-url", sandbox_url, "--partner-key", KEY]
    args += ["--orders", "4", "--shops", "2", "--time-scale", "1000000", "--seed", "3", "--ledger", str(ledger_file)]
    result = subprocess.run(sandbox_cmd(*args), cwd=ROOT, capture_output=True, check=True)
    summary = orjson.loads(result.stdout)
    ledger = Ledger.from_json(ledger_file.read_bytes())
    assert summary["pushes"] == len(ledger.entries) and summary["lost"] == len(ledger.entries)
    assert all(e.codes == [404, 404, 404, 404] for e in ledger.entries)

    params = public_query(PARTNER, KEY, LOST_PUSH_PATH, int(time.time()))
    lost = httpx.get(sandbox_url + LOST_PUSH_PATH, params=params).json()["response"]["push_message_list"]
    assert {(p["shop_id"], orjson.loads(p["data"])["ordersn"]) for p in lost} == {
        (e.shop_id, e.order_sn) for e in ledger.entries
    }

    newest = max(ledger.entries, key=lambda e: e.update_time)
    access, _ = initial_tokens(KEY, newest.shop_id)
    query = shop_query(PARTNER, KEY, ORDER_DETAIL_PATH, int(time.time()), access, newest.shop_id)
    order = httpx.get(sandbox_url + ORDER_DETAIL_PATH, params={**query, "order_sn_list": newest.order_sn}).json()
    assert order["response"]["order_list"][0]["order_status"] == newest.status


def test_bad_fault_flag_is_a_one_line_config_error() -> None:
    result = subprocess.run(sandbox_cmd("serve", "--error-rate", "3"), cwd=ROOT, capture_output=True)
    assert result.returncode == 2
    assert result.stderr.decode().strip().startswith("configuration error: sandbox faults")
