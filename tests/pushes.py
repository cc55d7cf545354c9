"""Builders for signed Shopee pushes, shared by the ingest tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson

from tests.signer import push_authorization

PUSH_KEY = "test_partner_key_do_not_use"
CALLBACK_URL = "https://receiver.example.com/shopee/push"


def real_push(shop_id: int, order_sn: str, status: str = "READY_TO_SHIP", update_time: int = 1_700_000_000) -> bytes:
    return orjson.dumps(
        {
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
    )


def legacy_push(shop_id: str, order_sn: str, status: str = "READY_TO_SHIP", update_time: int = 1_735_689_600) -> bytes:
    return orjson.dumps({"shop_id": shop_id, "order_sn": order_sn, "order_status": status, "update_time": update_time})


def signed_headers(body: bytes, key: str = PUSH_KEY, url: str = CALLBACK_URL) -> dict[str, str]:
    return {"Authorization": push_authorization(key, url, body), "Content-Type": "application/json"}


def ingest_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPEE_", "INGEST_", "DATABASE_URL"))}
    env.update(SHOPEE_PUSH_KEY=PUSH_KEY, SHOPEE_CALLBACK_URL=CALLBACK_URL, LOG_LEVEL="WARNING")
    env.update(extra)
    return env


@contextmanager
def ingest_server(port: int, env: dict[str, str], wait_ready: bool = True) -> Iterator[str]:
    """Run `python -m service serve` for real, yield its base URL, stop it afterwards."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed after the process is gone
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        path = "/readyz" if wait_ready else "/healthz"
        while True:
            if proc.poll() is not None:
                log.seek(0)
                out = log.read().decode(errors="replace")
                raise RuntimeError(f"ingest server exited with {proc.returncode}: {out[-2000:]}")
            try:
                if httpx.get(base + path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("ingest server did not become ready within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def decode(value: bytes) -> Any:
    return orjson.loads(value)
