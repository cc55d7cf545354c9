"""Live status of the other parts for the overview: consumer group lag, ingest readiness."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Lag:
    per_partition: dict[int, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.per_partition.values())


class KafkaStatus:
    """An admin client (committed offsets) and a group-less consumer (end offsets)."""

    def __init__(self, options: dict[str, Any], topic: str, group: str) -> None:
        self._options = options
        self.topic = topic
        self.group = group
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(**self._options)
        await self._admin.start()
        self._consumer = AIOKafkaConsumer(**self._options, group_id=None, enable_auto_commit=False)
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partition ids from fresh metadata ([] when it does not exist)."""
        assert self._admin is not None
        described = await self._admin.describe_topics([topic])
        return sorted(
            p["partition"]
            for t in described
            if t.get("error_code") == 0 and t["topic"] == topic
            for p in t["partitions"]
        )

    async def lag(self) -> Lag:
        """End offset minus the group's committed offset, per partition of the main topic."""
        assert self._admin is not None and self._consumer is not None
        try:
            tps = [TopicPartition(self.topic, p) for p in await self.partitions(self.topic)]
            if not tps:
                return Lag(error=f"topic {self.topic} not found")
            end = await self._consumer.end_offsets(tps)
            committed = await self._admin.list_consumer_group_offsets(self.group, partitions=tps)
        except KafkaError as exc:
            log.warning("consumer lag unavailable", extra={"error": repr(exc)})
            return Lag(error=type(exc).__name__)
        lag = Lag()
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag.per_partition[tp.partition] = max(0, end[tp] - done)
        return lag


async def ingest_ready(client: httpx.AsyncClient, base_url: str | None) -> str:
    """'ready', 'not ready (503)', 'unreachable' or 'not configured' (CONSOLE_INGEST_URL unset)."""
    if not base_url:
        return "not configured"
    try:
        response = await client.get(base_url.rstrip("/") + "/readyz", timeout=2.0)
    except httpx.HTTPError:
        return "unreachable"
    return "ready" if response.status_code == 200 else f"not ready ({response.status_code})"
