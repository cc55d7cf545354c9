"""Issue 11, item 8: a peer closing a pooled connection costs no retry.

A real HTTP/1.1 server over TCP (no mocks): it answers the first request on each
connection with keep-alive, then closes the connection when the next request arrives on
it without answering, as a server does whose idle timeout fires just as the client
reuses the connection. The client must answer from a fresh connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from service.consume.shopee import KEEPALIVE_EXPIRY_SECONDS, ShopeeClient
from service.sandbox.cli import SERVER_OPTIONS

BODY = orjson.dumps({"request_id": "r", "error": "", "message": "", "response": {"order_list": [{"order_sn": "A1"}]}})


class ClosingServer:
    def __init__(self) -> None:
        self.connections = 0
        self.answered = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if served == 1:
                    break  # the idle timeout fires as the second request arrives
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
                    + BODY
                )
                await writer.drain()
                served += 1
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def closing_server() -> AsyncIterator[tuple[ClosingServer, str]]:
    state = ClosingServer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield state, f"http://127.0.0.1:{port}"


async def test_a_closed_pooled_connection_is_replaced_without_an_error(
    closing_server: tuple[ClosingServer, str],
) -> None:
    state, url = closing_server
    async with ShopeeClient(base_url=url, partner_id=1, partner_key=b"k") as client:
        for _ in range(3):
            details = await client.get_order_detail("7", "token", ["A1"])
            assert [o["order_sn"] for o in details.orders] == ["A1"]
    assert state.answered == 3
    assert state.connections >= 3  # each closed connection was replaced by a fresh one


def test_the_sandbox_keeps_idle_connections_longer_than_the_client() -> None:
    assert SERVER_OPTIONS["timeout_keep_alive"] > KEEPALIVE_EXPIRY_SECONDS * 2
