"""Postgres: shop credentials, serialised token rotation, and the idempotent order upsert."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import asyncpg
import orjson

from service.errors import CredentialsError, StoreError
from service.types import Credentials, OrderRow, Refresher

#: One multi-row upsert for a batch (docs/contract.md#tables). The newest `update_time` wins, ties go to
#: the later write, and a known update_time is never replaced by an unknown (NULL) one.
#: DISTINCT ON makes the statement safe even when the same order appears twice in its
#: input (Postgres refuses to update one row twice in one statement), and its ORDER BY
#: takes row locks in a stable order so concurrent batches cannot deadlock.
#: Parameters: shop_id[], order_sn[], order_status[], update_time[] (s), order_detail[]
#: (JSON text), event_id[], record_timestamp_ms[].
UPSERT_ORDERS_SQL = """
INSERT INTO shopee_orders_raw AS t
    (shop_id, order_sn, order_status, update_time, order_detail, event_id, record_timestamp_ms, processed_at)
SELECT DISTINCT ON (u.shop_id, u.order_sn)
    u.shop_id, u.order_sn, u.order_status, u.update_time, u.order_detail::jsonb, u.event_id,
    u.record_timestamp_ms, now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::bigint[])
    WITH ORDINALITY AS u(shop_id, order_sn, order_status, update_time, order_detail, event_id,
                         record_timestamp_ms, ord)
ORDER BY u.shop_id, u.order_sn, u.update_time DESC NULLS LAST, u.ord DESC
ON CONFLICT (shop_id, order_sn) DO UPDATE SET
    order_status = EXCLUDED.order_status,
    update_time = EXCLUDED.update_time,
    order_detail = EXCLUDED.order_detail,
    event_id = EXCLUDED.event_id,
    record_timestamp_ms = EXCLUDED.record_timestamp_ms,
    processed_at = EXCLUDED.processed_at
WHERE t.update_time IS NULL OR EXCLUDED.update_time >= t.update_time
"""

#: what a lost or restarting Postgres raises: all retriable (StoreError)
_DB_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

_SELECT_CREDENTIALS = """
SELECT shop_id, access_token, refresh_token, is_active, access_token_expires_at, refresh_token_expires_at
FROM merchant_shopee_config WHERE shop_id = $1
"""

_UPDATE_TOKENS = """
UPDATE merchant_shopee_config
SET access_token = $2, refresh_token = $3, access_token_expires_at = $4, refresh_token_expires_at = $5,
    token_refreshed_at = now(), updated_at = now()
WHERE shop_id = $1
"""


def upsert_args(rows: Sequence[OrderRow]) -> tuple[list[Any], ...]:
    """The parameters of UPSERT_ORDERS_SQL for `rows` (column arrays)."""
    return (
        [r.shop_id for r in rows],
        [r.order_sn for r in rows],
        [r.order_status for r in rows],
        [r.update_time for r in rows],
        [orjson.dumps(r.order_detail).decode() for r in rows],
        [r.event_id for r in rows],
        [r.record_timestamp_ms for r in rows],
    )


async def upsert_orders(conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, rows: Sequence[OrderRow]) -> None:
    """Upsert `rows` with one statement (callers own the transaction, if any)."""
    if rows:
        await conn.execute(UPSERT_ORDERS_SQL, *upsert_args(rows))


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release, after asyncpg has rolled back any open transaction.

    asyncpg's default sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`
    on every release: a round trip that doubles the statements of a batch. This store
    takes no advisory locks, opens no cursors, listens to nothing and sets nothing, so
    there is nothing to reset.
    """


def _credentials(row: asyncpg.Record | None, shop_id: str) -> Credentials:
    if row is None:
        raise CredentialsError(f"shop {shop_id} has no merchant_shopee_config row", reason="shop_unknown")
    if not row["is_active"]:
        raise CredentialsError(f"shop {shop_id} is not active", reason="shop_inactive")
    if not row["access_token"] or not row["refresh_token"]:
        raise CredentialsError(f"shop {shop_id} has no tokens", reason="shop_without_tokens")
    return Credentials(
        shop_id=row["shop_id"],
        access_token=row["access_token"],
        refresh_token=row["refresh_token"],
        access_token_expires_at=row["access_token_expires_at"],
        refresh_token_expires_at=row["refresh_token_expires_at"],
    )


class Store:
    """The consumer's Postgres side. `async with Store(dsn):` owns a connection pool."""

    def __init__(self, dsn: str, *, max_connections: int = 10, command_timeout: float = 30.0) -> None:
        self._dsn = dsn
        self._max = max(2, max_connections)
        self._timeout = command_timeout
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=self._max, command_timeout=self._timeout, reset=_keep_session
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to Postgres: {type(exc).__name__}") from exc

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Close the pool; connections still busy after `grace_seconds` are terminated."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), grace_seconds)
            except TimeoutError:
                pool.terminate()

    async def __aenter__(self) -> Store:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Store is not started")
        return self._pool

    async def credentials(self, shop_id: str) -> Credentials:
        """The shop's active credentials; CredentialsError when unknown or inactive."""
        try:
            row = await self.pool.fetchrow(_SELECT_CREDENTIALS, shop_id)
        except _DB_ERRORS as exc:
            raise StoreError(f"reading credentials failed: {type(exc).__name__}") from exc
        return _credentials(row, shop_id)

    async def rotate_tokens(
        self,
        shop_id: str,
        *,
        stale_access_token: str | None,
        refresh: Refresher,
        now: dt.datetime,
        margin_seconds: float,
    ) -> Credentials:
        """Refresh the shop's token pair, serialised across replicas by a row lock.

        A refresh token works once, so two replicas refreshing the same shop would break
        it: the row stays locked (SELECT ... FOR UPDATE) for the whole refresh and the new
        pair is written in the same transaction. After taking the lock the row is re-read:
        when another replica already replaced `stale_access_token` with a token that is
        still valid, that token is used instead of refreshing again.
        `stale_access_token=None` refreshes only when the stored token needs it.
        """
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(_SELECT_CREDENTIALS + " FOR UPDATE", shop_id)
                current = _credentials(row, shop_id)
                replaced = stale_access_token is not None and current.access_token != stale_access_token
                if (replaced or stale_access_token is None) and not current.needs_refresh(now, margin_seconds):
                    return current
                pair = await refresh(current)
                await conn.execute(
                    _UPDATE_TOKENS,
                    shop_id,
                    pair.access_token,
                    pair.refresh_token,
                    pair.access_token_expires_at,
                    pair.refresh_token_expires_at,
                )
        except _DB_ERRORS as exc:
            raise StoreError(f"token rotation failed in Postgres: {type(exc).__name__}") from exc
        return Credentials(
            shop_id=shop_id,
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            access_token_expires_at=pair.access_token_expires_at,
            refresh_token_expires_at=pair.refresh_token_expires_at,
        )

    async def upsert_orders(self, rows: Sequence[OrderRow]) -> None:
        """Write a batch with one statement: atomic on its own, so no BEGIN/COMMIT round trips."""
        if not rows:
            return
        try:
            async with self.pool.acquire() as conn:
                await upsert_orders(conn, rows)
        except _DB_ERRORS as exc:
            raise StoreError(f"order upsert failed: {type(exc).__name__}: {exc}") from exc
