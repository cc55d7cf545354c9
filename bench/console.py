"""`make bench-console`: the console's dead-letter pages with 100,000 letters in the topic.

LETTERS dead letters (REASONS reasons, SHOPS shops; nine in ten from the consumer with
their record, one in ten from the ingest with a raw body) are produced into a fresh
3-partition dead-letter topic. `python -m service console` is started against it and a
fresh database; a signed-in httpx client then times, over real HTTP:

1. the first /dead-letters (the index reads the whole topic once: the cold start);
2. ROUNDS warm loads each of /dead-letters (reason groups and the first page of 50),
   one reason's list, one shop's list, a page deep in the list, and the overview;
3. the console's peak RSS (VmHWM), which holds the index.

    scripts/with-services.sh 19092 55433 .venv/bin/python -m bench.console
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from collections.abc import Sequence

import httpx
from aiokafka import AIOKafkaProducer

from bench.profile import stamp
from bench.report import Row, machine, met, mib, num, print_table, render_table, say, write_section
from bench.setup import create_topics, fresh_database, migrate, require_env
from service.console.auth import hash_password
from service.records import DeadLetter, OrderRecord
from tests.percentile import percentile
from tests.processes import Process, child_env, free_port, service_argv

REASONS = ("shop_unknown", "shop_inactive", "refresh_token_rejected", "shopee_permanent", "undecodable_record")
SHOPS = 2000
USER, PASSWORD = "bench", "bench-password-1"
WARM_TARGET_SECONDS = 0.5  # p95 of a warm page
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def letter(i: int, now_ms: int) -> DeadLetter:
    shop = str(500000 + i % SHOPS)
    at = now_ms - (i * 37) % 86_400_000
    if i % 10 == 9:
        body = b'{"data":{"ordersn":"RAW%d"},"shop_id":%s}' % (i, shop.encode())
        return DeadLetter.for_raw_body("unusable_payload", "missing status", body, at, shop)
    record = OrderRecord(
        shop_id=shop,
        order_sn=f"BENCH{i:07d}",
        order_status="READY_TO_SHIP",
        timestamp=at,
        update_time=at // 1000,
        event_id=f"e{i}",
    )
    reason = REASONS[i % len(REASONS)]
    return DeadLetter(
        reason=reason,
        detail=f"{reason} for shop {shop}",
        source="consumer",
        failed_at_ms=at,
        shop_id=shop,
        record=record.as_dict(),
    )


async def fill(bootstrap: str, topic: str, count: int) -> float:
    started = time.monotonic()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=262144)
    await producer.start()
    try:
        now_ms = int(time.time() * 1000)
        for start in range(0, count, 5000):
            futures = [
                await producer.send(topic, (d := letter(i, now_ms)).encode(), key=d.key.encode())
                for i in range(start, min(count, start + 5000))
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.monotonic() - started


def sign_in(client: httpx.Client) -> None:
    token = _CSRF.search(client.get("/login").text)
    assert token is not None
    answer = client.post("/login", data={"username": USER, "password": PASSWORD, "csrf_token": token.group(1)})
    if answer.status_code != 303:
        raise SystemExit(f"bench: sign-in failed ({answer.status_code})")


def timed(client: httpx.Client, path: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = client.get(path)
        times.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise SystemExit(f"bench: {path} answered {answer.status_code}")
    return times


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--letters", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    bootstrap = require_env("KAFKA_BOOTSTRAP_SERVERS")
    admin_url = require_env("TEST_DATABASE_URL")
    tag = stamp()
    dlq, main_topic = f"bench.console.{tag}.dlq", f"bench.console.{tag}"
    asyncio.run(create_topics(bootstrap, [dlq], 3))
    asyncio.run(create_topics(bootstrap, [main_topic], 12))
    say(f"producing {args.letters:,} dead letters")
    fill_seconds = asyncio.run(fill(bootstrap, dlq, args.letters))
    db_url = asyncio.run(fresh_database(admin_url, f"bench_console_{tag}"))
    migrate(db_url)
    port = free_port()
    env = child_env(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        KAFKA_TOPIC_DEAD_LETTER=dlq,
        KAFKA_TOPIC_MARKETPLACE_ORDERS=main_topic,
        DATABASE_URL=db_url,
        CONSOLE_USERS=f"{USER}:{hash_password(PASSWORD)}",
        CONSOLE_SECRET_KEY="bench-console-secret-key-0123456789",  # noqa: S106 - a throwaway local run
    )
    with Process("console", service_argv("console", "--port", str(port)), env) as console:
        console.wait_http(f"http://127.0.0.1:{port}/healthz")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            sign_in(client)
            cold = timed(client, "/dead-letters", 1)[0]
            pages = {
                "/dead-letters (groups + first page)": "/dead-letters",
                "one reason": "/dead-letters?reason=shop_unknown",
                "one shop": "/dead-letters?shop_id=500007",
                "page 1,000 of the list": "/dead-letters?page=1000",
                "overview": "/",
            }
            warm = {name: timed(client, path, args.rounds) for name, path in pages.items()}
        peak = console.sample_memory()
    info = machine()
    rows = [
        Row("letters in the topic", f"{args.letters:,}"),
        Row("first /dead-letters (reads the whole topic)", f"{num(cold, 2)} s"),
    ]
    for name, times in warm.items():
        worst = percentile(times, 95)
        rows.append(
            Row(
                f"warm {name}: median / p95",
                f"{num(statistics.median(times) * 1000)} / {num(worst * 1000)} ms",
                target=f"p95 ≤ {num(WARM_TARGET_SECONDS * 1000)} ms",
                met=met(worst <= WARM_TARGET_SECONDS),
            )
        )
    rows.append(Row("console peak RSS (VmHWM)", mib(peak)))
    print_table("console", rows)
    body = (
        "## Console (`make bench-console`)\n\n"
        f"Run: {info['commit']}, {info['date']}.\n\n"
        f"{args.letters:,} dead letters ({len(REASONS) + 1} reasons, {SHOPS:,} shops; one in ten an ingest letter "
        f"with a raw body) produced into a fresh 3-partition topic in {num(fill_seconds, 1)} s; "
        "`python -m service console` against it and a fresh database; a signed-in client over real HTTP "
        f"on 127.0.0.1; each warm page loaded {args.rounds} times in a row. The first load builds the "
        "console's in-memory index of the topic (one read from the beginning); later loads read only "
        "what was appended since, then filter and group the index. (Findings: docs/benchmarks.md.)\n\n"
        + render_table(rows)
        + "\n"
    )
    path = write_section("console", body, info)
    say(f"wrote {path}")


if __name__ == "__main__":
    main()
