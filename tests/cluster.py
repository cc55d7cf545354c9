"""A production-shaped test cluster: three Kafka brokers, replication factor 3, min.insync.replicas 2.

As Confluent Cloud runs it: brokers and KRaft controllers are separate processes, so a
broker that dies takes no controller with it (Apache Kafka advises against combined
broker+controller nodes in production for this reason). Every node is one JVM started by
scripts/kafka.sh like every test broker, its config appended through KAFKA_EXTRA_CONFIG,
one cluster id for all. One controller is enough here: the tests kill brokers, never it.

The failure detection is shortened (FAILOVER): with the default `broker.session.timeout.ms`
(9 s) a SIGKILLed broker keeps leading its partitions, and stays in their in-sync
replicas, for about 9 s; the ingest gives Kafka 1.5 s before it falls back to its outbox
(README, "In an outage").
"""

from __future__ import annotations

import base64
import concurrent.futures
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from tests.conftest import PrivateBroker, private_ports

BROKERS = 3
CONTROLLER_ID = 100

REPLICATION = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
}

#: the controller fences a broker (its partitions get new leaders, it leaves their in-sync
#: replicas) 0.6 s after the broker's last heartbeat instead of 9 s
FAILOVER = {"broker.heartbeat.interval.ms": "150", "broker.session.timeout.ms": "600"}


def cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass
class Cluster:
    controller: PrivateBroker
    brokers: dict[int, PrivateBroker]  # by node id

    @property
    def bootstrap(self) -> str:
        return ",".join(broker.bootstrap for broker in self.brokers.values())

    def kill(self, *node_ids: int) -> None:
        """SIGKILL brokers, as a crash would: no shutdown, no leadership handed over."""
        for node_id in node_ids:
            self.brokers[node_id].kill()

    def start(self, *node_ids: int) -> None:
        """Start these brokers again, keeping their data (they catch up from the others)."""
        _in_parallel([self.brokers[n] for n in node_ids], lambda broker: broker.start(keep_data=True))

    def stop(self) -> None:
        _in_parallel(list(self.brokers.values()), PrivateBroker.wipe)
        self.controller.wipe()

    async def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> the node id of its leader (-1: none), as the cluster's metadata says."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
        finally:
            await admin.close()
        return {p["partition"]: p["leader"] for p in described["partitions"]}


def _in_parallel(brokers: list[PrivateBroker], action: Callable[[PrivateBroker], None]) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(brokers)) as pool:
        for done in [pool.submit(action, broker) for broker in brokers]:
            done.result()


def _write(path: Path, properties: dict[str, str]) -> str:
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    return str(path)


@contextmanager
def start_cluster(directory: Path, overrides: dict[str, str] | None = None) -> Iterator[Cluster]:
    """One controller and three brokers on free ports, stopped and deleted afterwards.

    `overrides`: server properties that replace the ones above (e.g. the default session
    timeout), for every node.
    """
    first = private_ports(2 * (1 + BROKERS))  # kafka.sh also checks each node's port + 1
    voters = f"{CONTROLLER_ID}@127.0.0.1:{first}"
    common = {"controller.quorum.voters": voters, **REPLICATION, **FAILOVER, **(overrides or {})}
    env = {"KAFKA_CLUSTER_ID": cluster_id(), "KAFKA_HEAP": "256m"}
    controller_listener = f"CONTROLLER://127.0.0.1:{first}"
    controller_config = {"process.roles": "controller", "node.id": str(CONTROLLER_ID), **common}
    controller_config |= {"listeners": controller_listener, "advertised.listeners": controller_listener}
    controller = PrivateBroker(
        first, {**env, "KAFKA_EXTRA_CONFIG": _write(directory / "controller.properties", controller_config)}
    )
    brokers = {}
    for node_id in range(1, BROKERS + 1):
        port = first + 2 * node_id
        config = {
            "process.roles": "broker",
            "node.id": str(node_id),
            **common,
            "listeners": f"PLAINTEXT://127.0.0.1:{port}",
        }
        brokers[node_id] = PrivateBroker(
            port, {**env, "KAFKA_EXTRA_CONFIG": _write(directory / f"broker-{node_id}.properties", config)}
        )
    cluster = Cluster(controller, brokers)
    try:
        controller.start(keep_data=False)
        _in_parallel(list(brokers.values()), lambda broker: broker.start(keep_data=False))
        yield cluster
    finally:
        cluster.stop()
