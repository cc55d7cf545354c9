"""A private broker with a private CA and the listeners hosted Kafkas use (docs/contract.md).

Listeners: PLAINTEXT (for test set-up), SASL_SSL with PLAIN (Confluent Cloud), SASL_SSL
with SCRAM-SHA-512 (Aiven, MSK SCRAM, Redpanda Cloud) and SSL with required client
certificates (Aiven's default, MSK TLS). Started through scripts/kafka.sh like every
test broker; the SCRAM user is created when the storage is formatted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import PrivateBroker, private_ports
from tests.tls import Pki, make_pki

USER, PASSWORD = "gateway", "gateway-secret"
LISTENERS = {"SASLPLAIN": "SASL_SSL", "SASLSCRAM": "SASL_SSL", "MTLS": "SSL"}


@dataclass(frozen=True)
class SecureBroker:
    plaintext: str  # bootstrap of the PLAINTEXT listener, for creating topics
    pki: Pki
    ports: dict[str, int]

    def env(self, listener: str) -> dict[str, str]:
        """The gateway's KAFKA_* settings for one listener."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.ports[listener]}", "KAFKA_SSL_CA_FILE": str(self.pki.ca)}
        if listener == "MTLS":
            env.update(
                KAFKA_SECURITY_PROTOCOL="SSL",
                KAFKA_SSL_CERT_FILE=str(self.pki.client_cert),
                KAFKA_SSL_KEY_FILE=str(self.pki.client_key),
            )
        else:  # SASL_SSL is the default when an API key is set
            env.update(KAFKA_API_KEY=USER, KAFKA_API_SECRET=PASSWORD)
        if listener == "SASLSCRAM":
            env["KAFKA_SASL_MECHANISM"] = "SCRAM-SHA-512"
        return env


def _properties(port: int, ports: dict[str, int], pki: Pki) -> str:
    listeners = ",".join(f"{name}://127.0.0.1:{p}" for name, p in ports.items())
    protocols = ",".join(f"{name}:{proto}" for name, proto in LISTENERS.items())
    return f"""
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1},{listeners}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},{listeners}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,{protocols}
ssl.keystore.type=PEM
ssl.keystore.location={pki.broker}
ssl.truststore.type=PEM
ssl.truststore.location={pki.ca}
listener.name.saslplain.sasl.enabled.mechanisms=PLAIN
listener.name.saslplain.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";
listener.name.saslscram.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.saslscram.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.mtls.ssl.client.auth=required
"""


@contextlib.contextmanager
def start_secure_broker(directory: Path) -> Iterator[SecureBroker]:
    pki = make_pki(directory)
    port = private_ports(2 + len(LISTENERS))
    ports = {name: port + 2 + i for i, name in enumerate(LISTENERS)}
    config = directory / "listeners.properties"
    config.write_text(_properties(port, ports, pki))
    scram = f"--add-scram 'SCRAM-SHA-512=[name={USER},password={PASSWORD}]'"
    broker = PrivateBroker(port, {"KAFKA_EXTRA_CONFIG": str(config), "KAFKA_FORMAT_ARGS": scram})
    broker.start(keep_data=False)
    try:
        yield SecureBroker(broker.bootstrap, pki, ports)
    finally:
        broker.stop()
