"""The console against the real broker and Postgres: sign-in, escaping, no secrets, replay once."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import asyncpg
import orjson
import pytest
from starlette.testclient import TestClient

from service.console.actions import Replayer
from service.console.app import create_app
from service.migrate import migrate
from service.records import DeadLetter
from service.settings import Settings
from tests.conftest import read_topic
from tests.console_helpers import (
    PASSWORD,
    SECRET_KEY,
    USER,
    console_settings,
    csrf_of,
    now_ms,
    put_letters,
    sign_in,
    wait_for_job,
)
from tests.consume_helpers import fetch_rows, order, seed_shop

pytestmark = pytest.mark.integration

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ACCESS_TOKEN = "ACCESS-TOKEN-must-not-show-4f1a"
REFRESH_TOKEN = "REFRESH-TOKEN-must-not-show-9b2c"
PARTNER_KEY = "PARTNER-KEY-must-not-show-77aa"


@contextmanager
def signed_in(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), follow_redirects=False) as client:
        assert sign_in(client).status_code == 303
        yield client


async def prepared(kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], database_url: str) -> Settings:
    await migrate(database_url)
    topic = await new_topic(partitions=2, prefix="orders")
    dlq = await new_topic(partitions=1, prefix="dlq")
    return console_settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_marketplace_orders=topic,
        kafka_topic_dead_letter=dlq,
        database_url=database_url,
        shopee_partner_key=PARTNER_KEY,
    )


async def test_a_wrong_password_fails_and_the_right_one_opens_the_overview(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], database_url: str
) -> None:
    settings = await prepared(kafka_bootstrap, new_topic, database_url)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        wrong = sign_in(client, password=PASSWORD + "!")
        assert wrong.status_code == 401
        assert "Wrong user name or password" in wrong.text
        assert client.get("/").status_code == 303
        assert sign_in(client, user="mallory").status_code == 401
        assert sign_in(client).status_code == 303
        overview = client.get("/")
        assert overview.status_code == 200
        assert "Overview" in overview.text
    audit = await fetch_rows(database_url, "SELECT actor, action FROM console_audit ORDER BY id")
    assert [(r["actor"], r["action"]) for r in audit] == [
        (USER, "login_failed"),
        ("mallory", "login_failed"),
        (USER, "login"),
    ]


async def test_html_in_a_dead_letter_is_shown_escaped_on_every_page(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], database_url: str
) -> None:
    settings = await prepared(kafka_bootstrap, new_topic, database_url)
    record = order("7001", XSS).as_dict()
    letters = [
        DeadLetter(
            reason="shop_unknown", detail=XSS, source="consumer", failed_at_ms=now_ms(), shop_id="7001", record=record
        ),
        DeadLetter.for_raw_body(XSS, XSS, orjson.dumps({"data": {"ordersn": XSS}, "shop_id": 7001}), now_ms(), "7001"),
    ]
    await put_letters(kafka_bootstrap, settings.kafka_topic_dead_letter, letters)
    with signed_in(settings) as client:
        pages = [client.get(p) for p in ("/", "/dead-letters", "/dead-letters/0/0", "/dead-letters/0/1")]
        pages.append(client.get("/dead-letters", params={"order_sn": XSS}))
    for page in pages:
        assert page.status_code == 200, page.url
        assert "<script>" not in page.text and "<img src=x" not in page.text, page.url
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in pages[1].text  # order_sn and reason in the list
    assert pages[2].text.count("&lt;script&gt;") >= 2  # detail and record
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[3].text  # the decoded raw body
    assert "2 matching" in pages[4].text  # the record's order_sn and the raw body's data.ordersn
    assert "script-src 'none'" in pages[0].headers["content-security-policy"]


async def test_no_token_key_or_password_appears_on_any_page(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], database_url: str
) -> None:
    settings = await prepared(kafka_bootstrap, new_topic, database_url)
    expired = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    await seed_shop(database_url, "7002", access_token=ACCESS_TOKEN, refresh_token=REFRESH_TOKEN, expires_at=expired)
    await seed_shop(database_url, "7005", expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=4))
    conn_rows = await fetch_rows(database_url, "SELECT count(*) AS n FROM merchant_shopee_config")
    assert conn_rows[0]["n"] == 2
    letter = DeadLetter(
        reason="shop_unknown",
        source="consumer",
        failed_at_ms=now_ms(),
        shop_id="7002",
        record=order("7002", "SN-1").as_dict(),
    )
    await put_letters(kafka_bootstrap, settings.kafka_topic_dead_letter, [letter])
    with signed_in(settings) as client:
        paths = [
            "/",
            "/dead-letters",
            "/dead-letters/0/0",
            "/shops",
            "/shops/7002",
            "/orders",
            "/orders?q=7002",
            "/audit",
        ]
        pages = {p: client.get(p) for p in [*paths, "/metrics"]}
    secrets = [ACCESS_TOKEN, REFRESH_TOKEN, PARTNER_KEY, PASSWORD, SECRET_KEY, "$argon2"]
    for path, page in pages.items():
        assert page.status_code == 200, path
        for secret in secrets:
            assert secret not in page.text, (path, secret)
        assert 'name="csrf_token" value=""' not in page.text, path  # every form carries its token
    assert "7002" in pages["/shops"].text  # the shop is listed, only its secrets are not
    rows = {
        m[0]: m[1]
        for m in re.findall(
            r'<a href="/shops/(\d+)">\d+</a></td>\s*<td>.*?</td>\s*<td class="([^"]*)"', pages["/shops"].text, re.S
        )
    }
    assert rows == {"7002": "nowrap warn", "7005": "nowrap "}  # only the expired access token is highlighted
    assert 'gateway_dead_letters_in_topic{reason="shop_unknown"} 1.0' in pages["/metrics"].text


async def test_replay_shows_the_dry_run_count_then_replays_each_letter_once(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], database_url: str
) -> None:
    settings = await prepared(kafka_bootstrap, new_topic, database_url)
    raw = DeadLetter.for_raw_body("unusable_payload", "bad json", b"{nope", now_ms(), "7003")
    letters = [
        DeadLetter(
            reason="shop_unknown",
            source="consumer",
            failed_at_ms=now_ms(),
            shop_id="7003",
            record=order("7003", f"SN-{i}").as_dict(),
        )
        for i in range(3)
    ]
    await put_letters(kafka_bootstrap, settings.kafka_topic_dead_letter, [*letters, raw])
    with signed_in(settings) as client:
        form = {"csrf_token": csrf_of(client.get("/dead-letters").text), "scope": "all", "shop_id": "7003"}
        dry = client.post("/dead-letters/replay", data=form)
        assert dry.status_code == 200
        assert "<strong>3</strong> letters will be put back" in dry.text
        assert "1 without a record" in dry.text
        assert await read_topic(kafka_bootstrap, settings.kafka_topic_marketplace_orders, wait_seconds=1) == []

        done = client.post("/dead-letters/replay", data={**form, "confirm": "yes"})
        assert done.status_code == 303
        assert "3 of 3 replayed" in wait_for_job(client, done.headers["location"])

        again = client.post("/dead-letters/replay", data={**form, "confirm": "yes"})  # the second click
        assert "0 of 0 replayed" in client.get(again.headers["location"]).text
        listing = client.get("/dead-letters", params={"shop_id": "7003"}).text
        assert listing.count(">replayed</span>") == 3
        assert "0 replayable and not replayed yet" in listing
    produced = await read_topic(kafka_bootstrap, settings.kafka_topic_marketplace_orders, expect=3, wait_seconds=10)
    assert sorted(orjson.loads(m.value)["order_sn"] for m in produced) == ["SN-0", "SN-1", "SN-2"]
    audit = await fetch_rows(
        database_url, "SELECT actor, count, filter FROM console_audit WHERE action = 'replay' ORDER BY id"
    )
    assert [(r["actor"], r["count"]) for r in audit] == [(USER, 3), (USER, 0)]
    assert orjson.loads(audit[0]["filter"]) == {"scope": "all", "shop_id": "7003"}
    assert base64.b64decode(raw.raw_body_b64 or "") == b"{nope"


async def test_two_replays_of_the_same_letters_at_once_claim_each_letter_once(database_url: str) -> None:
    await migrate(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
    try:
        replayer = Replayer(console_settings(database_url=database_url), pool, "dlq.claims")
        positions = [(0, offset) for offset in range(200)]
        first, second = await asyncio.gather(replayer.claim(positions, "alice"), replayer.claim(positions, "bob"))
        assert sorted(first + second) == positions
        assert await replayer.claim(positions[:5], "carol") == []
    finally:
        await pool.close()


async def test_the_overview_shows_the_last_recover_runs_once_that_table_exists(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], database_url: str
) -> None:
    settings = await prepared(kafka_bootstrap, new_topic, database_url)
    # a database from before migration 003 (recover's), which created recover_runs
    await _execute(database_url, "DROP TABLE IF EXISTS recover_runs")
    with signed_in(settings) as client:
        assert "Last recover runs" not in client.get("/").text
        # the recover command's table (its own migration creates it; the console only reads it)
        await _execute(
            database_url,
            "CREATE TABLE recover_runs (id bigserial PRIMARY KEY, kind text, started_at timestamptz DEFAULT now(), "
            "finished_at timestamptz, seen int, produced int, errors int, detail text);"
            "INSERT INTO recover_runs (kind, finished_at, seen, produced, errors, detail) "
            "VALUES ('reconcile', now(), 120, 7, 0, 'window 2026-11-13..2026-11-28')",
        )
        page = client.get("/").text
        metrics = client.get("/metrics").text
    assert "Last recover runs" in page and "window 2026-11-13..2026-11-28" in page
    assert 'gateway_recover_last_success_timestamp_seconds{kind="reconcile"}' in metrics


async def _execute(database_url: str, sql: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_letters_appended_after_a_page_load_appear_on_the_next_one(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], database_url: str
) -> None:
    settings = await prepared(kafka_bootstrap, new_topic, database_url)

    def letters(*shops: str) -> list[DeadLetter]:
        return [DeadLetter(reason="shop_inactive", source="consumer", failed_at_ms=now_ms(), shop_id=s) for s in shops]

    with signed_in(settings) as client:
        assert "0 matching" in client.get("/dead-letters").text
        await put_letters(kafka_bootstrap, settings.kafka_topic_dead_letter, letters("7101", "7102"))
        assert "2 matching" in client.get("/dead-letters").text
        await put_letters(kafka_bootstrap, settings.kafka_topic_dead_letter, letters("7103"))
        page = client.get("/dead-letters").text
        assert "3 matching" in page
        assert client.get("/dead-letters").text.count(">shop_inactive</td>") == 3  # nothing indexed twice


async def test_acknowledging_a_reason_marks_its_group_and_is_audited(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]], database_url: str
) -> None:
    settings = await prepared(kafka_bootstrap, new_topic, database_url)
    letter = DeadLetter(reason="shop_inactive", source="consumer", failed_at_ms=now_ms(), shop_id="7201")
    await put_letters(kafka_bootstrap, settings.kafka_topic_dead_letter, [letter])
    with signed_in(settings) as client:
        page = client.get("/dead-letters").text
        assert "acknowledged by" not in page
        done = client.post("/dead-letters/acknowledge", data={"csrf_token": csrf_of(page), "reason": "shop_inactive"})
        assert done.status_code == 303
        assert "acknowledged by alice" in client.get(done.headers["location"]).text
    audit = await fetch_rows(
        database_url, "SELECT actor, action, filter FROM console_audit WHERE action = 'acknowledge'"
    )
    assert [(r["actor"], orjson.loads(r["filter"])) for r in audit] == [(USER, {"reason": "shop_inactive"})]
