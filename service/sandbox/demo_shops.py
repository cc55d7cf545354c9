"""Demo shops' credentials, printed or written into `merchant_shopee_config`.

The tokens come from one of two places:
- by default, computed: a fresh sandbox's initial tokens are a pure function of
  (partner_key, shop_id) (see tokens.py), so this needs no running sandbox; the access
  token's expiry is taken as now + token TTL;
- with `sandbox_url`, asked from a running sandbox (`POST /sandbox/shops`), which also
  gives tokens that were rotated since it started, with their real expiry.

Written with the seed's own statement plus `ON CONFLICT (shop_id) DO UPDATE`; the optional
`access_token_expires_at` / `refresh_token_expires_at` columns are filled when the table
has them (found through information_schema), and values follow the columns' types.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from service.sandbox.tokens import initial_tokens, merchant_id_for

TABLE = "merchant_shopee_config"
BASE_COLUMNS = ("merchant_id", "shop_id", "partner_id", "access_token", "refresh_token", "is_active")
OPTIONAL_COLUMNS = ("access_token_expires_at", "refresh_token_expires_at")
REFRESH_TTL_SECONDS = 30 * 86400


def computed_shops(
    partner_id: int, partner_key: str, shop_ids: list[int], now: float, token_ttl_seconds: float
) -> list[dict[str, Any]]:
    shops = []
    for shop_id in shop_ids:
        access, refresh = initial_tokens(partner_key, shop_id)
        shops.append(
            {
                "shop_id": shop_id,
                "merchant_id": str(merchant_id_for(shop_id)),
                "partner_id": partner_id,
                "access_token": access,
                "refresh_token": refresh,
                "access_token_expires_at": now + token_ttl_seconds,
                "refresh_token_expires_at": now + REFRESH_TTL_SECONDS,
            }
        )
    return shops


async def fetch_shops(sandbox_url: str, shop_ids: list[int]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(sandbox_url.rstrip("/") + "/sandbox/shops", json={"shop_ids": shop_ids})
        response.raise_for_status()
        shops: list[dict[str, Any]] = response.json()["shops"]
        return shops


def _convert(value: Any, data_type: str) -> Any:
    if data_type == "uuid":
        return uuid.UUID(str(value))
    if data_type in ("bigint", "integer", "smallint", "numeric"):
        return int(value)
    if data_type.startswith("timestamp"):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if data_type == "boolean":
        return bool(value)
    return str(value)


async def insert_shops(database_url: str, shops: list[dict[str, Any]]) -> int:
    """Upsert the shops' credentials; returns how many rows were written."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = $1 AND table_schema = ANY(current_schemas(false))",
            TABLE,
        )
        types = {r["column_name"]: r["data_type"] for r in rows}
        missing = [c for c in BASE_COLUMNS if c not in types]
        if missing:
            raise RuntimeError(f"{TABLE} lacks columns {missing} (run `python -m service migrate` first)")
        columns = [*BASE_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in types)]
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in ("merchant_id", "shop_id"))
        statement = (
            f"INSERT INTO {TABLE} ({', '.join(columns)}) VALUES ({placeholders}) "  # noqa: S608 - fixed names
            f"ON CONFLICT (shop_id) DO UPDATE SET {updates}"
        )
        values = [[_convert({**shop, "is_active": True}[c], types[c]) for c in columns] for shop in shops]
        async with conn.transaction():
            await conn.executemany(statement, values)
        return len(values)
    finally:
        await conn.close()
