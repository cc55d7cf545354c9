"""Helpers for the console's tests: settings with a known user, a signed-in client, seeding."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from starlette.testclient import TestClient

from service.console.auth import hash_password
from service.records import DeadLetter
from service.settings import Settings

USER = "alice"
PASSWORD = "correct horse battery"
SECRET_KEY = "console-test-secret-key-0123456789"
_HASH = hash_password(PASSWORD)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "console_users": f"{USER}:{_HASH}",
        "console_secret_key": SECRET_KEY,
        "database_url": "postgresql://unused@127.0.0.1:1/unused",
        "kafka_bootstrap_servers": "127.0.0.1:1",
    }
    values.update(overrides)
    return Settings(**values)


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "page has no CSRF token"
    return match.group(1)


def sign_in(client: TestClient | httpx.Client, user: str = USER, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": user, "password": password, "csrf_token": token, "next": "/"})


async def put_letters(bootstrap: str, topic: str, letters: list[DeadLetter]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(topic, letter.encode(), key=letter.key.encode())
    finally:
        await producer.stop()


def now_ms() -> int:
    return int(time.time() * 1000)


def wait_for_job(client: TestClient | httpx.Client, url: str, within: float = 60) -> str:
    """The job page once the replay job is no longer running (polls, up to `within` s)."""
    deadline = time.monotonic() + within
    while True:
        page = client.get(url).text
        if ">running<" not in page or time.monotonic() > deadline:
            return page
        time.sleep(0.2)
