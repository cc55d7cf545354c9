"""Signed Shopee pushes (the one builder for tests, benchmarks and scripts) and a real ingest server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from tests.processes import Process, child_env, service_argv
from tests.signer import push_authorization

PUSH_KEY = "test_partner_key_do_not_use"
CALLBACK_URL = "https://receiver.example.com/shopee/push"


def real_push(
    shop_id: int,
    order_sn: str,
    status: str = "READY_TO_SHIP",
    update_time: int = 1_700_000_000,
    *,
    msg_id: str | None = None,
) -> bytes:
    """An order status push (code 3) in the shape Shopee sends."""
    push: dict[str, Any] = {
        "data": {
            "items": [],
            "ordersn": order_sn,
            "status": status,
            "completed_scenario": "",
            "update_time": update_time,
        },
        "shop_id": shop_id,
        "code": 3,
        "timestamp": update_time,
    }
    if msg_id is not None:
        push["msg_id"] = msg_id
    return orjson.dumps(push)


def legacy_push(shop_id: str, order_sn: str, status: str = "READY_TO_SHIP", update_time: int = 1_735_689_600) -> bytes:
    return orjson.dumps({"shop_id": shop_id, "order_sn": order_sn, "order_status": status, "update_time": update_time})


def signed_headers(body: bytes, key: str = PUSH_KEY, url: str = CALLBACK_URL) -> dict[str, str]:
    return {"Authorization": push_authorization(key, url, body), "Content-Type": "application/json"}


def ingest_env(**extra: str) -> dict[str, str]:
    return child_env(**{"SHOPEE_PUSH_KEY": PUSH_KEY, "SHOPEE_CALLBACK_URL": CALLBACK_URL, **extra})


@contextmanager
def ingest_server(port: int, env: dict[str, str], wait_ready: bool = True) -> Iterator[str]:
    """Run `python -m service serve` for real, yield its base URL, stop it afterwards."""
    base = f"http://127.0.0.1:{port}"
    with Process("ingest", service_argv("serve", "--host", "127.0.0.1", "--port", str(port)), env) as proc:
        proc.wait_http(base + ("/readyz" if wait_ready else "/healthz"))
        yield base


def decode(value: bytes) -> Any:
    return orjson.loads(value)
