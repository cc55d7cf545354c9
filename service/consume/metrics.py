"""The consumer's Prometheus metrics, registered on a registry the caller passes in."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LONG = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 180, 300, 600, 1800, 3600)


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.batch_size = Histogram(
            "consumer_batch_size_orders",
            "Distinct orders per batch handed to a worker",
            buckets=(1, 2, 5, 10, 20, 30, 40, 50),
            registry=registry,
        )
        self.batch_age = Histogram(
            "consumer_batch_age_seconds", "Age of a batch's first record at flush", buckets=_LONG, registry=registry
        )
        self.batches = Counter("consumer_batches_total", "Batches finished, by outcome", ["outcome"], registry=registry)
        self.batches_in_flight = Gauge("consumer_batches_in_flight", "Batches being processed", registry=registry)
        self.throttle_wait = Histogram(
            "consumer_throttle_wait_seconds",
            "Time a Shopee call waited for its shop's rate limit",
            buckets=_LONG,
            registry=registry,
        )
        self.shopee_calls = Histogram(
            "consumer_shopee_call_seconds",
            "Shopee API call latency, by endpoint and outcome",
            ["endpoint", "outcome"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.token_refreshes = Counter(
            "consumer_token_refreshes_total",
            "Token rotations: refreshed here, reused another replica's, or failed",
            ["outcome"],
            registry=registry,
        )
        self.upsert_latency = Histogram(
            "consumer_upsert_seconds", "Batch upsert latency", buckets=_LATENCY, registry=registry
        )
        self.orders_written = Counter("consumer_orders_written_total", "Order rows upserted", registry=registry)
        self.dead_letters = Counter(
            "consumer_dead_letters_total", "Records dead-lettered, by reason", ["reason"], registry=registry
        )
        self.end_to_end = Histogram(
            "consumer_end_to_end_seconds",
            "From the push's receipt to its row being written",
            buckets=_LONG,
            registry=registry,
        )
        self.records_pending = Gauge(
            "consumer_records_pending", "Records fetched whose outcome is not durable yet", registry=registry
        )
        self.fetch_paused = Gauge(
            "consumer_fetch_paused", "1 while fetching is paused for backpressure", registry=registry
        )
        self.commits = Counter("consumer_commits_total", "Offset commits, by outcome", ["outcome"], registry=registry)
        self.retries = Counter("consumer_retries_total", "Retried steps, by reason", ["reason"], registry=registry)


class MetricsServer:
    """`GET /metrics` and `GET /healthz` on `port` (0 = off), served by the consumer's own
    event loop rather than a thread: a liveness probe on /healthz then fails when that loop
    is stuck, which is what a liveness probe is for."""

    def __init__(self, registry: CollectorRegistry, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from the pod network
        self._registry = registry
        self._port = port
        self._addr = addr
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        if self._port:
            self._server = await asyncio.start_server(self._handle, self._addr, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request_line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            method, _, rest = request_line.decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            if method != "GET":
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"method not allowed\n"
            elif path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
            elif path == "/healthz":
                status, ctype, body = "200 OK", "text/plain", b"ok\n"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
            head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
