"""The consumer benchmark's I/O floor: the I/O `consume` cannot avoid, and nothing else.

`python -m bench.minimal` (environment as for `python -m service consume`) reads the
topic from the start, groups records per shop into batches of BATCH_MAX_SIZE, and for
each batch makes one get_order_detail call to Shopee and one upsert into Postgres, with
MAX_CONCURRENCY batches at once, through the project's own Shopee client and Store (the
same HTTP client, the same request with the same optional fields, and the same SQL
statement as the consumer). It has no throttle, no retries, no offsets, no dead letters
and no batch timeout: partial batches are flushed once the topic has been read to its
end. A shop's token is read once. It stops when every record it read is a row and prints
the count.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import uvloop
from aiokafka import AIOKafkaConsumer

from service.consume.shopee import ShopeeClient
from service.consume.store import Store
from service.records import OrderRecord
from service.settings import Settings, load_settings
from service.types import OrderRow

Batch = list[OrderRecord]


async def read_all(settings: Settings, size: int, batches: asyncio.Queue[Batch | None]) -> int:
    """Every record now in the topic, as full batches while reading and partial ones at the end."""
    topic = settings.kafka_topic_marketplace_orders
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,  # every partition, no group, no offsets
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        while not (parts := list(consumer.assignment())):  # noqa: ASYNC110 - aiokafka signals no assignment event
            await asyncio.sleep(0.05)
        starts, ends = await consumer.beginning_offsets(parts), await consumer.end_offsets(parts)
        in_topic = sum(ends[tp] - starts[tp] for tp in parts)
        open_: dict[str, Batch] = {}
        read = 0
        while read < in_topic:
            for records in (await consumer.getmany(timeout_ms=100, max_records=5000)).values():
                for message in records:
                    record = OrderRecord.decode(message.value)
                    batch = open_.setdefault(record.shop_id, [])
                    batch.append(record)
                    read += 1
                    if len(batch) == size:
                        await batches.put(open_.pop(record.shop_id))
        for batch in open_.values():
            await batches.put(batch)
        return read
    finally:
        await consumer.stop()


async def write_batches(shopee: ShopeeClient, store: Store, batches: asyncio.Queue[Batch | None]) -> None:
    tokens: dict[str, str] = {}
    while (batch := await batches.get()) is not None:
        shop = batch[0].shop_id
        if shop not in tokens:
            tokens[shop] = (await store.credentials(shop)).access_token
        latest = {r.order_sn: r for r in batch}
        details = await shopee.get_order_detail(shop, tokens[shop], list(latest))
        rows = [
            OrderRow(
                shop_id=shop,
                order_sn=str(d["order_sn"]),
                order_status=d.get("order_status"),
                update_time=d.get("update_time"),
                order_detail=d,
                event_id=latest[str(d["order_sn"])].event_id,
                record_timestamp_ms=latest[str(d["order_sn"])].timestamp,
            )
            for d in details.orders
        ]
        await store.upsert_orders(rows)


async def main() -> int:
    settings = load_settings(kafka_consumer_group=f"bench-minimal-{uuid.uuid4().hex[:8]}")
    assert settings.database_url is not None and settings.shopee_partner_key is not None
    assert settings.shopee_partner_id is not None
    batches: asyncio.Queue[Batch | None] = asyncio.Queue()
    concurrency = settings.max_concurrency
    async with (
        Store(settings.database_url.get_secret_value(), max_connections=concurrency + 2) as store,
        ShopeeClient(
            base_url=settings.shopee_api_base_url,
            partner_id=settings.shopee_partner_id,
            partner_key=settings.shopee_partner_key.get_secret_value().encode(),
            optional_fields=settings.optional_fields,  # the same request, so the same answer to store
            timeout_seconds=settings.shopee_timeout_seconds,
            max_connections=concurrency * 2,
        ) as shopee,
    ):
        writers = [asyncio.create_task(write_batches(shopee, store, batches)) for _ in range(concurrency)]
        started = time.perf_counter()
        read = await read_all(settings, settings.batch_max_size, batches)
        for _ in writers:
            await batches.put(None)
        await asyncio.gather(*writers)
    print(f"minimal: {read} records in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(uvloop.run(main()))
