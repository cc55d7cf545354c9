"""The consumer benchmark's ceiling: the consumer's own rows upserted again with its own
statement (Store.upsert_orders, one transaction per batch of one shop), with no Kafka, no
HTTP and no Shopee client in the way."""

from __future__ import annotations

import asyncio
import itertools
import time

import asyncpg
import orjson

from service.consume.store import Store
from service.types import OrderRow


async def read_rows(db_url: str) -> list[OrderRow]:
    conn = await asyncpg.connect(db_url)
    try:
        records = await conn.fetch(
            "SELECT shop_id, order_sn, order_status, update_time, order_detail::text AS order_detail, event_id, "
            "record_timestamp_ms FROM shopee_orders_raw ORDER BY shop_id, id"
        )
    finally:
        await conn.close()
    return [OrderRow(**{**dict(r), "order_detail": orjson.loads(r["order_detail"])}) for r in records]


async def ceiling(db_url: str, rows: list[OrderRow], batch: int, concurrency: int) -> float:
    """Upsert `rows` per shop in batches of `batch`, `concurrency` at once, like the consumer; seconds."""
    queue: asyncio.Queue[list[OrderRow]] = asyncio.Queue()
    for _, group in itertools.groupby(rows, key=lambda r: r.shop_id):
        of_shop = list(group)
        for i in range(0, len(of_shop), batch):
            queue.put_nowait(of_shop[i : i + batch])
    async with Store(db_url, max_connections=concurrency + 2) as store:
        # open the connections first, as the consumer's pool is warm when it drains
        await asyncio.gather(*(store.pool.fetchval("SELECT 1") for _ in range(concurrency)))

        async def worker() -> None:
            while not queue.empty():
                await store.upsert_orders(queue.get_nowait())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started
