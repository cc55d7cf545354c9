"""service/kafka_join.py: a member offering both our assignors joins its group with one JoinGroup."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import aiokafka
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer import group_coordinator

from service import kafka_join
from service.consume.kafka_io import Rebalance, open_consumer
from service.kafka_client import ASSIGNORS, client_options
from service.settings import Settings
from tests.waiting import until


def test_the_fix_was_checked_against_the_aiokafka_in_use() -> None:
    # Fails on an aiokafka the fix was not checked against (install() then leaves aiokafka
    # alone): see whether https://github.com/aio-libs/aiokafka/pull/1168 is in it, then
    # drop the fix or add the version to PATCHED_VERSIONS.
    assert aiokafka.__version__ in kafka_join.PATCHED_VERSIONS


@pytest.mark.integration
async def test_a_member_offering_both_assignors_joins_a_new_group_in_one_generation(
    kafka_bootstrap: str, new_topic: Callable[..., Awaitable[str]]
) -> None:
    assert len(ASSIGNORS) == 2  # the case the fix is for
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_marketplace_orders=await new_topic(partitions=2),
        kafka_consumer_group=f"g-{uuid.uuid4().hex[:10]}",
    )
    assigned: list[set[tuple[str, int]]] = []

    async def revoked(_partitions: set[tuple[str, int]]) -> None: ...

    kafka = await open_consumer(
        AIOKafkaConsumer, client_options(settings), settings, Rebalance(assigned.append, revoked)
    )
    try:
        await until(lambda: bool(assigned), within=30, what="the member to be assigned its partitions")
        # aiokafka 0.14.0 alone sends a second JoinGroup with other protocols, which the
        # broker answers with a second rebalance: generation 2 for a group of one
        assert group_coordinator.CoordinatorGroupRebalance is kafka_join.SingleJoinRebalance
        assert kafka._coordinator.generation == 1
        assert len(assigned[-1]) == 2
    finally:
        await kafka.stop()
