"""The console's Postgres reads: one function per page section, plain rows out.

No secret column (access_token, refresh_token) is ever selected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

PAGE_SIZE = 50

# the seed's monitoring query (SPEC 4.5), unchanged
ROWS_PER_HOUR = (
    "SELECT DATE_TRUNC('hour', processed_at), COUNT(*), COUNT(DISTINCT shop_id) FROM shopee_orders_raw "
    "WHERE processed_at >= NOW() - INTERVAL '24 hours' GROUP BY 1"
)


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    page: int
    has_next: bool


def _page(rows: list[asyncpg.Record], page: int, size: int = PAGE_SIZE) -> Page:
    return Page([dict(r) for r in rows[:size]], page, len(rows) > size)


async def rows_per_hour(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await pool.fetch(ROWS_PER_HOUR))


async def outbox_status(pool: asyncpg.Pool) -> dict[str, Any] | None:
    if not await table_exists(pool, "gateway_outbox"):
        return None
    row = await pool.fetchrow(
        "SELECT COUNT(*) AS depth, EXTRACT(EPOCH FROM now() - MIN(created_at)) AS oldest_age_seconds FROM gateway_outbox"
    )
    return dict(row) if row is not None else None


async def table_exists(pool: asyncpg.Pool, name: str) -> bool:
    return bool(await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def recover_runs(pool: asyncpg.Pool, limit: int = 5) -> list[dict[str, Any]] | None:
    """The last recover runs, or None while the recover command's table does not exist."""
    if not await table_exists(pool, "recover_runs"):
        return None
    rows = await pool.fetch(
        "SELECT id, kind, started_at, finished_at, seen, produced, errors, detail FROM recover_runs "
        "ORDER BY started_at DESC LIMIT $1",
        limit,
    )
    return [dict(r) for r in rows]


_SHOP_COLUMNS = """
    c.shop_id, c.merchant_id, c.partner_id, c.is_active, c.access_token_expires_at,
    c.refresh_token_expires_at, c.token_refreshed_at, c.created_at,
    (SELECT COUNT(*) FROM shopee_orders_raw o
      WHERE o.shop_id = c.shop_id AND o.processed_at >= now() - INTERVAL '24 hours') AS orders_24h,
    (SELECT MAX(processed_at) FROM shopee_orders_raw o WHERE o.shop_id = c.shop_id) AS last_order_at
"""


async def shops(pool: asyncpg.Pool, page: int = 1) -> Page:
    rows = await pool.fetch(
        f"SELECT {_SHOP_COLUMNS} FROM merchant_shopee_config c ORDER BY c.shop_id LIMIT $1 OFFSET $2",  # noqa: S608 - constant columns
        PAGE_SIZE + 1,
        (page - 1) * PAGE_SIZE,
    )
    return _page(rows, page)


async def shop(pool: asyncpg.Pool, shop_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(f"SELECT {_SHOP_COLUMNS} FROM merchant_shopee_config c WHERE c.shop_id = $1", shop_id)  # noqa: S608
    return dict(row) if row is not None else None


_ORDER_COLUMNS = "shop_id, order_sn, order_status, update_time, order_detail::text AS order_detail, processed_at"


async def find_orders(pool: asyncpg.Pool, q: str, page: int = 1) -> Page:
    """Orders whose order_sn or shop_id is `q` (exact), newest first; all orders when q is empty."""
    rows = await pool.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM shopee_orders_raw "  # noqa: S608 - constant columns
        "WHERE $1 = '' OR order_sn = $1 OR shop_id = $1 ORDER BY processed_at DESC LIMIT $2 OFFSET $3",
        q,
        PAGE_SIZE + 1,
        (page - 1) * PAGE_SIZE,
    )
    return _page(rows, page)


async def audit(pool: asyncpg.Pool, page: int = 1) -> Page:
    rows = await pool.fetch(
        "SELECT id, at, actor, action, filter::text AS filter, count, detail FROM console_audit "
        "ORDER BY id DESC LIMIT $1 OFFSET $2",
        PAGE_SIZE + 1,
        (page - 1) * PAGE_SIZE,
    )
    return _page(rows, page)


async def replayed_positions(pool: asyncpg.Pool, topic: str) -> set[tuple[int, int]]:
    rows = await pool.fetch('SELECT partition, "offset" FROM console_dead_letter_replays WHERE topic = $1', topic)
    return {(r["partition"], r["offset"]) for r in rows}


async def reason_acks(pool: asyncpg.Pool, topic: str) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT reason, acknowledged_at, acknowledged_by FROM console_reason_acks WHERE topic = $1", topic
    )
    return {r["reason"]: dict(r) for r in rows}
