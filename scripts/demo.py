"""`make demo`: a burst of signed pushes to the service `make run` started, then the rows.

Sends realistic order-status pushes (with UNPAID ones, duplicates and out-of-order
delivery) through the sandbox's push sender, waits until every acknowledged order is a
row with its newest status, and prints the monitoring queries of docs/contract.md#tables.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import asyncpg

from service.sandbox.plan import PushConfig
from service.sandbox.push import send_pushes

HOURLY = (
    "SELECT DATE_TRUNC('hour', processed_at), COUNT(*), COUNT(DISTINCT shop_id) FROM shopee_orders_raw "
    "WHERE processed_at >= NOW() - INTERVAL '24 hours' GROUP BY 1"
)
PER_SHOP = (
    "SELECT shop_id, COUNT(*), MAX(processed_at) FROM shopee_orders_raw "
    "WHERE processed_at >= NOW() - INTERVAL '1 hour' GROUP BY shop_id"
)


def table(title: str, header: list[str], rows: list[asyncpg.Record]) -> None:
    print(f"\n{title}")  # noqa: T201
    print("  " + " | ".join(header))  # noqa: T201
    for row in rows:
        print("  " + " | ".join(str(v) for v in row))  # noqa: T201


async def main() -> int:
    ingest_port = os.environ.get("INGEST_PORT", "8080")
    sandbox_port = os.environ.get("SANDBOX_PORT", "8900")
    url = f"http://127.0.0.1:{ingest_port}/webhooks/shopee"
    dsn = f"postgresql://gateway:gateway@127.0.0.1:{os.environ.get('PG_PORT', '55432')}/gateway"
    key = os.environ.get("SHOPEE_PUSH_KEY") or os.environ.get("SHOPEE_PARTNER_KEY") or "sandbox_partner_key_not_secret"
    shops, orders = int(os.environ.get("DEMO_SHOPS", "5")), int(os.environ.get("DEMO_ORDERS", "120"))
    config = PushConfig(
        url=url,
        callback_url=url,
        push_key=key,
        shops=shops,
        orders=orders,
        duplicates=0.1,
        out_of_order=True,
        include_unpaid=True,
        concurrency=20,
        sandbox_url=f"http://127.0.0.1:{sandbox_port}",
    )
    print(f"sending pushes for {orders} orders over {shops} shops to {url} ...")  # noqa: T201
    ledger = await send_pushes(config)
    expected = ledger.expected_orders()
    acked = sum(1 for e in ledger.entries if e.acknowledged)
    print(f"{len(ledger.entries)} pushes sent, {acked} acknowledged; {len(expected)} orders expected as rows")  # noqa: T201

    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + float(os.environ.get("DEMO_WAIT_SECONDS", "90"))
        while True:
            rows = await conn.fetch("SELECT shop_id, order_sn, order_status FROM shopee_orders_raw")
            got = {(r["shop_id"], r["order_sn"]): r["order_status"] for r in rows}
            missing = [k for k in expected if k not in got]
            if not missing:
                break
            if time.monotonic() > deadline:
                print(f"{len(missing)} orders still missing after the wait, e.g. {missing[:3]}", file=sys.stderr)  # noqa: T201
                return 1
            await asyncio.sleep(1)
        stale = [k for k, (status, _) in expected.items() if got[k] != status]
        print(f"all {len(expected)} orders are rows; {len(expected) - len(stale)} with their newest status")  # noqa: T201
        if stale:
            print(f"{len(stale)} rows do not show the newest pushed status, e.g. {stale[:3]}", file=sys.stderr)  # noqa: T201
            return 1
        table("rows per hour", ["hour", "rows", "shops"], await conn.fetch(HOURLY))
        table("rows per shop, last hour", ["shop_id", "rows", "last processed"], await conn.fetch(PER_SHOP))
    finally:
        await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
