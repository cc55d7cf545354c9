"""Helpers for the consumer's tests: fake clock, migrated databases, shop seeding."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from service.migrate import migrate


class FakeClock:
    """A monotonic clock the test moves by hand; `sleep` advances it instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


async def migrated(database_url: str) -> str:
    await migrate(database_url)
    return database_url


async def seed_shop(
    database_url: str,
    shop_id: str,
    *,
    access_token: str = "access-0",  # noqa: S107 - test data
    refresh_token: str = "refresh-0",  # noqa: S107 - test data
    is_active: bool = True,
    expires_at: dt.datetime | None = None,
) -> None:
    """The seed's own INSERT (SPEC 4.5), plus an expiry when the test wants one."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO merchant_shopee_config (merchant_id, shop_id, partner_id, access_token, refresh_token, "
            "is_active) VALUES ($1, $2, 2001887, $3, $4, $5)",
            uuid.uuid4(),
            shop_id,
            access_token,
            refresh_token,
            is_active,
        )
        if expires_at is not None:
            await conn.execute(
                "UPDATE merchant_shopee_config SET access_token_expires_at = $2 WHERE shop_id = $1", shop_id, expires_at
            )
    finally:
        await conn.close()


async def fetch_rows(database_url: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()
