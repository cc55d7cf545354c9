"""The dead-letter topic: a record's outcome is durable once Kafka acknowledged its letter."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from service.errors import SinkUnavailable
from service.records import DeadLetter


class DeadLetterSink(Protocol):
    async def send(self, letters: Sequence[DeadLetter]) -> None:
        """Return once every letter is durable; raise a retriable GatewayError otherwise."""


class KafkaDeadLetters:
    def __init__(self, producer: AIOKafkaProducer, topic: str, *, timeout_seconds: float = 30.0) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout = timeout_seconds

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        try:
            async with asyncio.timeout(self._timeout):
                futures: list[Any] = [
                    await self._producer.send(self._topic, value=letter.encode(), key=letter.key.encode())
                    for letter in letters
                ]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            raise SinkUnavailable(f"dead-letter topic unavailable: {type(exc).__name__}") from exc


def dead_letter_producer(options: dict[str, Any]) -> AIOKafkaProducer:
    return AIOKafkaProducer(**options, acks="all", enable_idempotence=True, linger_ms=5)
