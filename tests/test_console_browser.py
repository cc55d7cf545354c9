"""The console in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
against a running stack: sandbox Shopee, ingest, consumer and `python -m service console`.

A push for an unknown shop becomes a dead letter; the operator sees it under its reason,
the shop's credentials are inserted, the operator replays it from the page, the order
becomes a row, and the audit page shows who replayed it. Every page is screenshotted to
docs/screenshots/console/.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from service.console.auth import hash_password
from service.sandbox.config import DEFAULT_PARTNER_KEY
from tests.conftest import ROOT, free_port
from tests.console_helpers import PASSWORD, SECRET_KEY, USER
from tests.consume_helpers import dead_letters, wait_for_rows
from tests.e2e import CALLBACK_PATH, Stack
from tests.pushes import real_push, signed_headers

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "docs" / "screenshots" / "console"
KNOWN_SHOP, UNKNOWN_SHOP = 810001, 810002


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def push(stack: Stack, shop_id: int, order_sn: str) -> None:
    body = real_push(shop_id, order_sn)
    url = stack.ingest_url + CALLBACK_PATH
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(url, content=body, headers=signed_headers(body, DEFAULT_PARTNER_KEY, url))
    assert response.status_code == 200 and response.content == b""


async def test_an_operator_replays_an_unknown_shops_order_from_the_browser(
    kafka_bootstrap: str, database_url: str, browser: Browser
) -> None:
    stack = Stack(kafka_bootstrap, database_url)
    try:
        await stack.start()
        await stack.add_shops([KNOWN_SHOP])
        port = free_port()
        console_url = f"http://127.0.0.1:{port}"
        console = await stack.start_proc(
            "console",
            ["console", "--host", "127.0.0.1", "--port", str(port)],
            CONSOLE_USERS=f"{USER}:{hash_password(PASSWORD)}",
            CONSOLE_SECRET_KEY=SECRET_KEY,
            CONSOLE_INGEST_URL=stack.ingest_url,
        )
        await asyncio.to_thread(console.wait_http, console_url + "/healthz")
        await push(stack, KNOWN_SHOP, "KNOWN-1")
        await push(stack, UNKNOWN_SHOP, "LOST-1")
        await wait_for_rows(database_url, 1, where=f"shop_id = '{KNOWN_SHOP}'")
        (letter,) = await dead_letters(kafka_bootstrap, stack.dlq, expect=1, wait=60)
        assert letter.reason == "shop_unknown"

        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await page.goto(console_url + "/")
        await expect(page).to_have_url(console_url + "/login?next=%2F")
        await shot(page, "01-login")
        await page.fill("input[name=username]", USER)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")

        # the overview: the ingest is ready, one row written, one dead letter in the last hour
        await expect(page.locator("h1")).to_have_text("Overview")
        cards = page.locator(".card")
        await expect(cards.filter(has_text="Ingest").locator(".value")).to_have_text("ready")
        await expect(cards.filter(has_text="Rows written").locator(".value")).to_have_text("1")
        await expect(cards.filter(has_text="Dead letters").locator(".value")).to_contain_text("1")
        await shot(page, "02-overview")

        await page.click("nav >> text=Dead letters")
        group = page.locator("table").first.locator("tr", has_text="shop_unknown")
        await expect(group.locator("td").nth(1)).to_have_text("1")
        await group.locator("a", has_text="shop_unknown").click()
        row = page.locator("tr", has_text="LOST-1")
        await expect(row.locator(".tag")).to_have_text("pending")
        await shot(page, "03-dead-letters")

        await stack.add_shops([UNKNOWN_SHOP])  # the shop's credentials arrive

        await row.locator("a", has_text="detail").click()
        await expect(page.locator("dl.kv")).to_contain_text("shop_unknown")
        await shot(page, "04-dead-letter")
        await page.click("text=Replay this letter")
        await expect(page.locator(".notice")).to_contain_text("1 letter will be put back")
        await shot(page, "05-replay-confirm")
        await page.click("button[name=confirm]")
        await expect(page.locator("#job-state")).to_have_text("done", timeout=60_000)
        await expect(page.locator("dl.kv")).to_contain_text("1 of 1 replayed")
        await shot(page, "06-replay-job")

        rows = await wait_for_rows(database_url, 1, within=60, where=f"shop_id = '{UNKNOWN_SHOP}'")
        assert rows[0]["order_sn"] == "LOST-1"
        await page.goto(console_url + "/orders?q=LOST-1")
        await expect(page.locator("tr", has_text="LOST-1").locator("td").nth(2)).to_have_text("READY_TO_SHIP")
        await page.locator("summary").first.click()
        await shot(page, "07-orders")

        await page.click("nav >> text=Audit")
        replay_row = page.locator("tr", has_text="replay")
        await expect(replay_row.locator("td").nth(1)).to_have_text(USER)
        await expect(replay_row.locator("td").nth(4)).to_have_text("1")
        await shot(page, "08-audit")

        await page.click("nav >> text=Shops")
        await expect(page.locator("tr", has_text=str(UNKNOWN_SHOP))).to_contain_text("active")
        await shot(page, "09-shops")
        await page.click(f"text={UNKNOWN_SHOP}")
        await expect(page.locator("tr", has_text="LOST-1")).to_be_visible()
        await shot(page, "10-shop")

        await page.goto(console_url + "/dead-letters")
        await expect(page.locator("tr", has_text="LOST-1").locator(".tag")).to_have_text("replayed")
        await shot(page, "11-dead-letters-replayed")
    finally:
        stack.stop()
