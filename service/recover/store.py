"""Recovery's Postgres: sweep locks, the run log, per-shop checkpoints, stored orders.

Each sweep kind is guarded by a session-level advisory lock held on a connection of its
own for the whole sweep: a second copy gets `None` from `try_lock` and moves on, and a
copy that dies (even SIGKILL) releases the lock with its connection.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg

#: pg_advisory_lock keys, one per sweep kind (arbitrary but fixed)
LOCK_KEYS = {"lost_push": 0x677772637600_6C70, "reconcile": 0x677772637600_7263}


def token_fingerprint(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ShopState:
    shop_id: str
    reconciled_until: int | None
    blocked: bool  # its refresh token was refused for good and has not changed since


@dataclass(frozen=True, slots=True)
class RunTotals:
    seen: int = 0
    produced: int = 0
    errors: int = 0
    status: str = "ok"
    detail: str = ""


class RecoverStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def try_lock(self, kind: str) -> AsyncIterator[bool]:
        """Yields True while this process holds `kind`'s lock, False when another does."""
        async with self._pool.acquire() as conn:
            held = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEYS[kind]))
            try:
                yield held
            finally:
                if held:
                    await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEYS[kind])

    async def start_run(self, kind: str) -> int:
        return int(await self._pool.fetchval("INSERT INTO recover_runs (kind) VALUES ($1) RETURNING id", kind))

    async def finish_run(self, run_id: int, totals: RunTotals) -> None:
        await self._pool.execute(
            "UPDATE recover_runs SET finished_at = now(), status = $2, seen = $3, produced = $4, errors = $5, "
            "detail = $6 WHERE id = $1",
            run_id,
            totals.status,
            totals.seen,
            totals.produced,
            totals.errors,
            totals.detail[:4000],
        )

    async def active_shops(self) -> list[ShopState]:
        rows = await self._pool.fetch(
            "SELECT m.shop_id, c.reconciled_until, "
            "  (c.rejected_refresh_token_sha256 IS NOT NULL AND "
            "   c.rejected_refresh_token_sha256 = encode(sha256(convert_to(m.refresh_token, 'UTF8')), 'hex')) "
            "  AS blocked "
            "FROM merchant_shopee_config m LEFT JOIN recover_checkpoints c USING (shop_id) "
            "WHERE m.is_active ORDER BY m.shop_id"
        )
        return [ShopState(r["shop_id"], r["reconciled_until"], bool(r["blocked"])) for r in rows]

    async def advance(self, shop_id: str, reconciled_until: int) -> None:
        """The shop's orders up to `reconciled_until` are durable; its error is cleared."""
        await self._pool.execute(
            "INSERT INTO recover_checkpoints (shop_id, reconciled_until) VALUES ($1, $2) "
            "ON CONFLICT (shop_id) DO UPDATE SET reconciled_until = GREATEST("
            "  recover_checkpoints.reconciled_until, EXCLUDED.reconciled_until), "
            "  last_error = NULL, last_error_at = NULL, rejected_refresh_token_sha256 = NULL, updated_at = now()",
            shop_id,
            reconciled_until,
        )

    async def shop_failed(self, shop_id: str, error: str, rejected_refresh_token: str | None = None) -> None:
        fingerprint = None if rejected_refresh_token is None else token_fingerprint(rejected_refresh_token)
        await self._pool.execute(
            "INSERT INTO recover_checkpoints (shop_id, last_error, last_error_at, rejected_refresh_token_sha256) "
            "VALUES ($1, $2, now(), $3) ON CONFLICT (shop_id) DO UPDATE SET last_error = EXCLUDED.last_error, "
            "last_error_at = now(), rejected_refresh_token_sha256 = EXCLUDED.rejected_refresh_token_sha256, "
            "updated_at = now()",
            shop_id,
            error[:500],
            fingerprint,
        )

    async def stored_orders(self, shop_id: str, order_sns: Sequence[str]) -> dict[str, tuple[str | None, int | None]]:
        """order_sn -> (order_status, update_time) of the rows already stored."""
        rows = await self._pool.fetch(
            "SELECT order_sn, order_status, update_time FROM shopee_orders_raw "
            "WHERE shop_id = $1 AND order_sn = ANY($2::text[])",
            shop_id,
            list(order_sns),
        )
        return {r["order_sn"]: (r["order_status"], r["update_time"]) for r in rows}
