"""The overview, shops, orders and audit pages."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.console import queries
from service.console.charts import bars
from service.console.deadletters import Entry, per_hour
from service.console.health import ingest_ready
from service.console.web import console, guarded, page_param, render, text_param

# highlighted on /shops: an access token the consumer has not refreshed in time, a refresh
# token (30 days, used once) about to lapse
ACCESS_SOON_SECONDS = 600
REFRESH_SOON_SECONDS = 3 * 86400


def _soon(now: float) -> dict[str, dt.datetime]:
    return {
        "access": dt.datetime.fromtimestamp(now + ACCESS_SOON_SECONDS, dt.UTC),
        "refresh": dt.datetime.fromtimestamp(now + REFRESH_SOON_SECONDS, dt.UTC),
    }


@guarded
async def overview(request: Request) -> Response:
    c = console(request)
    assert c.index is not None and c.kafka is not None and c.http is not None
    now = c.clock()
    now_ms = int(now * 1000)
    entries, lag, ready, outbox, hourly, runs = await asyncio.gather(
        c.index.refresh(),
        c.kafka.lag(),
        ingest_ready(c.http, c.settings.console_ingest_url),
        queries.outbox_status(c.db),
        queries.rows_per_hour(c.db),
        queries.recover_runs(c.db),
    )
    last_hour = Counter(e.reason for e in entries if now_ms - e.failed_at_ms <= 3_600_000)
    last_day = Counter(e.reason for e in entries if now_ms - e.failed_at_ms <= 86_400_000)
    by_hour = {int(row[0].timestamp()) // 3600: row[1] for row in hourly}
    this_hour = int(now) // 3600
    rows = [by_hour.get(this_hour - 23 + i, 0) for i in range(24)]
    return render(
        request,
        "overview.html",
        ready=ready,
        outbox=outbox,
        lag=lag,
        letters_hour=sorted(last_hour.items()),
        letters_day=sorted(last_day.items()),
        letters_total=len(entries),
        rows_24h=sum(rows),
        rows_chart=bars(rows),
        letters_chart=bars(per_hour(entries, now_ms)),
        hourly=sorted(hourly, key=lambda r: r[0], reverse=True),
        runs=runs,
        group=c.settings.kafka_consumer_group,
    )


def _letters_by_shop(entries: list[Entry]) -> Counter[str | None]:
    return Counter(e.shop_id for e in entries)


@guarded
async def shops(request: Request) -> Response:
    c = console(request)
    assert c.index is not None
    page = await queries.shops(c.db, page_param(request))
    letters = _letters_by_shop(await c.index.refresh())
    return render(request, "shops.html", page=page, letters=letters, soon=_soon(c.clock()))


@guarded
async def shop(request: Request) -> Response:
    c = console(request)
    assert c.index is not None
    shop_id = request.path_params["shop_id"]
    row = await queries.shop(c.db, shop_id)
    if row is None:
        raise HTTPException(404, "no such shop")
    orders = await queries.find_orders(c.db, shop_id, page_param(request))
    letters = _letters_by_shop(await c.index.refresh())[shop_id]
    return render(request, "shop.html", shop=row, orders=orders, letters=letters, soon=_soon(c.clock()))


def _pretty(detail: str) -> str:
    try:
        return orjson.dumps(orjson.loads(detail), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        return detail


@guarded
async def orders(request: Request) -> Response:
    c = console(request)
    q = text_param(request, "q") or ""
    page = await queries.find_orders(c.db, q, page_param(request))
    for row in page.rows:
        row["order_detail"] = _pretty(row["order_detail"])
    return render(request, "orders.html", page=page, q=q)


@guarded
async def audit(request: Request) -> Response:
    c = console(request)
    return render(request, "audit.html", page=await queries.audit(c.db, page_param(request)))
