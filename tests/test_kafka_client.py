"""KAFKA_* security settings -> aiokafka options (docs/contract.md); bad combinations are one-line errors."""

import ssl
from pathlib import Path

import pytest

from service.errors import ConfigError
from service.kafka_client import client_options
from service.settings import Settings
from tests.tls import make_pki


def options(**env: str) -> dict[str, object]:
    return client_options(Settings(kafka_bootstrap_servers="broker:9093", **env))  # type: ignore[arg-type]


def test_without_security_settings_the_client_uses_plaintext() -> None:
    assert options() == {"bootstrap_servers": "broker:9093", "security_protocol": "PLAINTEXT"}


def test_an_api_key_alone_still_means_sasl_ssl_with_plain() -> None:
    got = options(kafka_api_key="key", kafka_api_secret="secret")
    assert (got["security_protocol"], got["sasl_mechanism"]) == ("SASL_SSL", "PLAIN")
    assert (got["sasl_plain_username"], got["sasl_plain_password"]) == ("key", "secret")
    assert isinstance(got["ssl_context"], ssl.SSLContext)


def test_scram_mechanisms_are_passed_on() -> None:
    got = options(kafka_api_key="u", kafka_api_secret="p", kafka_sasl_mechanism="SCRAM-SHA-512")
    assert got["sasl_mechanism"] == "SCRAM-SHA-512"


def test_the_ca_file_is_trusted_in_addition_to_the_system_store(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    got = options(kafka_security_protocol="SSL", kafka_ssl_ca_file=str(pki.ca))
    context = got["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.cert_store_stats()["x509_ca"] == system + 1
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "KAFKA_API_KEY is required"),
        ({"kafka_security_protocol": "SSL", "kafka_api_key": "k", "kafka_api_secret": "s"}, "does not use SASL"),
        ({"kafka_ssl_ca_file": "/ca.pem"}, "does not use TLS"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/c.pem"}, "must be set together"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": "/nonexistent/ca.pem"}, "could not be loaded"),
    ],
)
def test_bad_combinations_are_one_line_configuration_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        options(**env)
    assert "\n" not in str(caught.value)
