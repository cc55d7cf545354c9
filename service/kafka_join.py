"""One JoinGroup per group join, whatever the number of assignors (aiokafka 0.14's sends one per assignor).

aiokafka 0.14.0 sends its JoinGroup request inside the loop over the consumer's
assignors: with ours (round-robin, range; kafka_client.ASSIGNORS) every join sends two,
first offering round-robin alone, then both. The broker takes the second, with different
protocols, as a reason to rebalance again, so each member's join starts another
rebalance, and two members joining at once can go on rebalancing each other for good
(seen in tests on a fresh broker, in 2 runs of 4: two consumers at generation 820 after
90 s, about nine rebalances a second, until they were killed). Upstream:
https://github.com/aio-libs/aiokafka/pull/1168 (open).

`install()` swaps aiokafka's CoordinatorGroupRebalance for a subclass whose
`perform_group_join` is aiokafka's own with the request moved out of the loop; the
handling of the answer is aiokafka's, unchanged. It does so only for the aiokafka versions
in PATCHED_VERSIONS, the ones whose code this was copied from and checked against
(tests/test_kafka_join.py fails on any other, so an upgrade is a deliberate step).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiokafka
import aiokafka.errors as errors
from aiokafka.consumer import group_coordinator
from aiokafka.coordinator.protocol import ConsumerProtocol
from aiokafka.protocol.group import JoinGroupRequest

log = logging.getLogger("aiokafka.consumer.group_coordinator")  # where aiokafka logs the same lines

PATCHED_VERSIONS = ("0.14.0",)

_FATAL = (errors.InconsistentGroupProtocolError, errors.InvalidSessionTimeoutError, errors.InvalidGroupIdError)


class SingleJoinRebalance(group_coordinator.CoordinatorGroupRebalance):  # type: ignore[misc]
    async def perform_group_join(self) -> tuple[str, bytes] | None:
        """Join the group and return (protocol, assignment) for the next generation, or
        None to have the coordination loop try again (aiokafka's contract)."""
        log.info("(Re-)joining group %s", self.group_id)
        topics = self._subscription.topics
        protocols = []
        for assignor in self._assignors:
            metadata = assignor.metadata(topics)
            protocols.append((assignor.name, metadata if isinstance(metadata, bytes) else metadata.encode()))
        response = None
        try_join = True
        while try_join:  # twice only for KIP-394: the broker asks for a member id first
            try_join = False
            request = JoinGroupRequest(
                self.group_id,
                self._session_timeout_ms,
                self._rebalance_timeout_ms,
                self._coordinator.member_id,
                self._coordinator._group_instance_id,
                ConsumerProtocol.PROTOCOL_TYPE,
                protocols,
            )
            try:
                response = await self._coordinator._send_req(request)
            except errors.KafkaError:
                return None  # a connection error: the coordinator lookup backs off
            if not self._subscription.active:
                return None  # the subscription changed: start the join again
            if errors.for_code(response.error_code) is errors.MemberIdRequired:
                self._coordinator.member_id = response.member_id
                try_join = True
        return await self._joined(response)

    async def _joined(self, response: Any) -> tuple[str, bytes] | None:
        """aiokafka 0.14.0's handling of the JoinGroup answer, as it is there."""
        error_type = errors.for_code(response.error_code)
        if error_type is errors.NoError:
            self._coordinator.member_id = response.member_id
            self._coordinator.generation = response.generation_id
            protocol: str = response.group_protocol
            log.info(
                "Joined group '%s' (generation %s) with member_id %s",
                self.group_id,
                response.generation_id,
                response.member_id,
            )
            if response.leader_id == response.member_id:
                log.info("Elected group leader -- performing partition assignments using %s", protocol)
                assignment: bytes | None = await self._on_join_leader(response)
            else:
                assignment = await self._on_join_follower()
            return None if assignment is None else (protocol, assignment)
        if error_type is errors.GroupLoadInProgressError:
            await asyncio.sleep(self._retry_backoff_ms / 1000)
        elif error_type is errors.UnknownMemberIdError:
            self._coordinator.reset_generation()
        elif error_type in (errors.GroupCoordinatorNotAvailableError, errors.NotCoordinatorForGroupError):
            self._coordinator.coordinator_dead()
        elif error_type in _FATAL:
            log.error("Attempt to join group failed due to fatal error: %s", error_type())
            raise error_type()
        elif error_type is errors.GroupAuthorizationFailedError:
            raise error_type(self.group_id)
        else:
            log.error("Unexpected error in join group '%s' response: %s", self.group_id, error_type())
            raise errors.KafkaError(repr(error_type()))
        return None


def install() -> bool:
    """Use SingleJoinRebalance for every consumer group join; True when installed."""
    if aiokafka.__version__ not in PATCHED_VERSIONS:
        return False
    group_coordinator.CoordinatorGroupRebalance = SingleJoinRebalance
    return True
