"""The whole pipeline as processes, and a paced client of signed pushes, for the benchmarks
that drive it end to end (bench/e2e.py, bench/soak.py): the sandbox Shopee, `serve` (one
worker), and `consume` members of one consumer group, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx

from bench.ingest import CALLBACK_URL, PUSH_KEY
from bench.setup import Run, consumer_env, kafka_env, serve_argv, start_sandbox
from tests.processes import Process, child_env, free_port, service_argv
from tests.pushes import signed_headers

CONNECTIONS = 32
T = TypeVar("T")


@dataclass
class Pipeline:
    sandbox: Process
    serve: Process
    consumers: list[Process]
    serve_url: str
    group: str
    metrics_urls: list[str]  # each consumer's /metrics

    def processes(self) -> list[Process]:
        return [self.serve, *self.consumers, self.sandbox]

    def check_alive(self) -> None:
        for p in self.processes():
            p.check_alive()


def start_pipeline(
    run: Run, shops: int, shop_base: int, consumers: int, consumer_settings: Mapping[str, str], outbox: bool = False
) -> Pipeline:
    """Start the sandbox (with `shops` shops' credentials in the run's database), `serve`
    (with the Postgres outbox when `outbox`, as deployed) and `consumers` members of the
    run's group; return once all answer HTTP. Stops what it started if any fails."""
    procs: list[Process] = []
    try:
        sandbox, sandbox_url = start_sandbox(run.db_url, shops, shop_base)
        procs.append(sandbox)
        env = child_env(
            SHOPEE_PUSH_KEY=PUSH_KEY, SHOPEE_CALLBACK_URL=CALLBACK_URL, **kafka_env(run.bootstrap, run.topic)
        )
        if outbox:
            env["DATABASE_URL"] = run.db_url
        serve_port = free_port()
        serve = Process("serve", serve_argv(serve_port), env)
        procs.append(serve)
        members: list[tuple[Process, str]] = []
        for n in range(1, consumers + 1):
            port = free_port()
            env = consumer_env(run.db_url, run.bootstrap, run.topic, sandbox_url, **consumer_settings)
            name = "consume" if consumers == 1 else f"consume-{n}"
            member = Process(name, service_argv("consume"), {**env, "CONSUMER_METRICS_PORT": str(port)})
            procs.append(member)
            members.append((member, f"http://127.0.0.1:{port}/metrics"))
        serve_url = f"http://127.0.0.1:{serve_port}"
        serve.wait_http(serve_url + "/readyz")
        for member, url in members:
            member.wait_http(url)
    except BaseException:
        for p in reversed(procs):
            p.stop()
        raise
    group = consumer_env(run.db_url, run.bootstrap, run.topic, sandbox_url)["KAFKA_CONSUMER_GROUP"]
    return Pipeline(sandbox, serve, [m for m, _ in members], serve_url, group, [u for _, u in members])


def stop_pipeline(pipeline: Pipeline) -> None:
    for p in reversed(pipeline.processes()):
        p.stop()


def signed(body: bytes) -> dict[str, str]:
    """The headers Shopee would send with `body` to this benchmark's receiver."""
    return signed_headers(body, PUSH_KEY, CALLBACK_URL)


Answered = Callable[[T, int | None, float], None]


async def paced_send(
    url: str, pushes: Iterable[tuple[T, bytes, dict[str, str]]], rate: float, answered: Answered[T]
) -> tuple[int, float]:
    """POST each (tag, body, headers) on a fixed timeline, the i-th at start + i/rate, over at
    most CONNECTIONS keep-alive connections (a late client catches up, as wrk2 does).
    `answered(tag, status, perf_counter)` is called per answer (status None: no answer).
    Returns (pushes sent, seconds taken)."""
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    sem = asyncio.Semaphore(CONNECTIONS)
    pending: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def one(tag: T, body: bytes, headers: dict[str, str]) -> None:
            status: int | None = None
            try:
                status = (await client.post(url, content=body, headers=headers)).status_code
            except httpx.HTTPError:
                pass
            finally:
                sem.release()
            answered(tag, status, time.perf_counter())

        sent = 0
        start = time.perf_counter()
        for sent, (tag, body, headers) in enumerate(pushes, 1):
            delay = start + (sent - 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()
            task = asyncio.create_task(one(tag, body, headers))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        return sent, time.perf_counter() - start
