"""Kafka connection options from Settings (docs/contract.md, Environment), for every client we build.

`client_options(settings)` is the one place that turns the KAFKA_* settings into aiokafka
keyword arguments; the ingest producer, the consumer, the dead-letter producer, replay and
the scripts all pass its result on. `check_connection(settings)` is the start-up check:
a broker that rejects our credentials, mechanism or certificate is a configuration error
(one line, exit 2), while a broker that is merely unreachable is an outage the services
ride out (the ingest comes up unready, the consumer keeps retrying).

Mixed consumer groups: aiokafka offers its round-robin assignor first and the range
assignor second. A classic-protocol Java consumer at its defaults offers range and
cooperative-sticky; the group coordinator picks the one protocol every member offers,
range, so both kinds of consumer share a group (README, "Java clients").
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from service.errors import ConfigError
from service.settings import Settings

log = logging.getLogger(__name__)

#: round-robin first (what our own groups have always used), range for Java's defaults
ASSIGNORS = (RoundRobinPartitionAssignor, RangePartitionAssignor)

CHECK_TIMEOUT_SECONDS = 10.0


def security_protocol(settings: Settings) -> str:
    if settings.kafka_security_protocol is not None:
        return settings.kafka_security_protocol
    return "SASL_SSL" if settings.kafka_api_key is not None else "PLAINTEXT"


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The system trust store plus KAFKA_SSL_CA_FILE (added, never replacing it)."""
    context = ssl.create_default_context()
    try:
        if settings.kafka_ssl_ca_file:
            context.load_verify_locations(cafile=settings.kafka_ssl_ca_file)
        if settings.kafka_ssl_cert_file:
            context.load_cert_chain(settings.kafka_ssl_cert_file, keyfile=settings.kafka_ssl_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"Kafka TLS files could not be loaded: {exc}") from None
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka connection options: bootstrap servers, TLS and SASL as configured."""
    protocol = security_protocol(settings)
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap_servers, "security_protocol": protocol}
    sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
    if sasl:
        settings.require("kafka_api_key", "kafka_api_secret", purpose=f"Kafka {protocol}")
        assert settings.kafka_api_key is not None and settings.kafka_api_secret is not None
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_api_key.get_secret_value(),
            sasl_plain_password=settings.kafka_api_secret.get_secret_value(),
        )
    elif settings.kafka_api_key is not None:
        raise ConfigError(f"KAFKA_API_KEY is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL")
    if bool(settings.kafka_ssl_cert_file) != bool(settings.kafka_ssl_key_file):
        raise ConfigError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE must be set together")
    if tls:
        options["ssl_context"] = ssl_context(settings)
    elif settings.kafka_ssl_ca_file or settings.kafka_ssl_cert_file:
        raise ConfigError(f"KAFKA_SSL_* files are set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS")
    return options


_REJECTED = (SaslAuthenticationFailed, UnsupportedSaslMechanismError, IllegalSaslStateError, ssl.SSLError)


async def check_connection(settings: Settings) -> None:
    """Raise ConfigError when a broker rejects our credentials, mechanism or certificate.

    aiokafka's bootstrap logs such a rejection and then reports only "unable to
    bootstrap", which the services would treat as an outage and retry forever.
    """
    options = client_options(settings)
    options.pop("bootstrap_servers")
    for server in settings.kafka_bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                conn = await create_conn(host, int(port), **options)
        except _REJECTED as exc:
            how = "/".join(filter(None, (options["security_protocol"], options.get("sasl_mechanism"))))
            detail = " ".join(str(exc).split()) or type(exc).__name__
            if isinstance(exc, UnsupportedSaslMechanismError):
                detail = f"the listener does not offer {options['sasl_mechanism']}"
            raise ConfigError(
                f"Kafka at {server.strip()} rejected the connection ({how}): {type(exc).__name__}: {detail}"
            ) from None
        except (OSError, TimeoutError, KafkaError, ValueError) as exc:
            log.warning("kafka not reachable for the start-up check", extra={"server": server, "error": repr(exc)})
            continue
        conn.close()
        return
