"""Create the gateway's topics on a local broker (idempotent): `make run` uses it.

python scripts/create_topics.py BOOTSTRAP TOPIC:PARTITIONS [TOPIC:PARTITIONS ...]
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from service.kafka_client import client_options
from service.settings import load_settings


async def main(bootstrap: str, specs: list[str]) -> None:
    # the KAFKA_* security settings apply here as everywhere (service/kafka_client.py)
    admin = AIOKafkaAdminClient(**client_options(load_settings(kafka_bootstrap_servers=bootstrap)))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, int(n), 1) for name, _, n in (s.rpartition(":") for s in specs) if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
