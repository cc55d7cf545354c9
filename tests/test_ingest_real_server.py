"""Hostile input that only a real server shows: a body that trickles in (408 within the
budget, nothing forwarded) and spaces around the signature header (docs/contract.md#http-answers).
The in-process corpus is in test_ingest_hostile.py.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest

from tests.conftest import TopicFactory, free_port, read_topic
from tests.pushes import ingest_env, ingest_server, real_push, signed_headers


def _signature(body: bytes) -> str:
    return signed_headers(body)["Authorization"]


BUDGET = 2.0  # the default INGEST_RESPONSE_BUDGET_SECONDS


async def _slow_post(
    port: int, body: bytes, *, seconds_per_byte: float, chunked: bool = False, authorization: str | None = None
) -> tuple[int, float]:
    """Send headers at once, then the body a byte at a time; return (status, whether the whole body was sent
    before the answer came)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [
        "POST /webhooks/shopee HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Authorization: {_signature(body) if authorization is None else authorization}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}",
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    await writer.drain()

    async def trickle() -> None:
        for i in range(len(body)):
            piece = body[i : i + 1]
            writer.write(b"1\r\n" + piece + b"\r\n" if chunked else piece)
            await writer.drain()
            await asyncio.sleep(seconds_per_byte)

    sender = asyncio.create_task(trickle())
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=BUDGET + 10)
        body_sent = sender.done() and not sender.cancelled()
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        writer.close()
    return int(status_line.split()[1]), body_sent


@pytest.mark.integration
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_slow_body_is_408_before_it_ends_and_nothing_forwarded(
    kafka_bootstrap: str, new_topic: TopicFactory, chunked: bool
) -> None:
    topic, dlq = await new_topic(), await new_topic()
    env = ingest_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_MARKETPLACE_ORDERS=topic, KAFKA_TOPIC_DEAD_LETTER=dlq
    )
    port = free_port()
    body = real_push(42, "SLOW1")  # ~150 bytes at 10 per second: 15 s, far over the budget
    with ingest_server(port, env):
        status, body_sent = await _slow_post(port, body, seconds_per_byte=0.1, chunked=chunked)
    assert status == 408
    assert not body_sent, "the answer must not wait for a body that takes 15 s, far over the 2 s budget"
    assert await read_topic(kafka_bootstrap, topic, wait_seconds=2) == []
    assert await read_topic(kafka_bootstrap, dlq, wait_seconds=2) == []


@pytest.mark.integration
async def test_real_server_strips_whitespace_around_the_header_but_not_inside(
    kafka_bootstrap: str, new_topic: TopicFactory
) -> None:
    """Spaces around a field value are not part of it (RFC 9110 5.5); the server drops them."""
    topic, dlq = await new_topic(), await new_topic()
    env = ingest_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC_MARKETPLACE_ORDERS=topic, KAFKA_TOPIC_DEAD_LETTER=dlq
    )
    port = free_port()
    body = real_push(42, "WS1")
    sig = _signature(body)
    with ingest_server(port, env):
        around, _ = await _slow_post(port, body, seconds_per_byte=0, authorization=f"  {sig} \t")
        inside, _ = await _slow_post(port, body, seconds_per_byte=0, authorization=f"{sig[:9]} {sig[9:]}")
    assert (around, inside) == (200, 401)
    [record] = await read_topic(kafka_bootstrap, topic, expect=1)
    assert orjson.loads(record.value)["order_sn"] == "WS1"
