"""A private CA with a broker and a client certificate, made with `cryptography` for tests."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path  # CA certificate (PEM): what clients and the broker trust
    broker: Path  # broker key + certificate chain in one PEM file (Kafka's PEM keystore)
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _leaf(
    subject: str, usage: x509.ObjectIdentifier, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _issue(subject, key, ca.subject, ca_key).add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(directory: Path) -> Pki:
    """CA, broker certificate for 127.0.0.1/localhost, and a client certificate, as PEM files."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        _issue("gateway test CA", ca_key, _name("gateway test CA"), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(*([False] * 5), True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    broker, broker_key = _leaf("kafka broker", ExtendedKeyUsageOID.SERVER_AUTH, ca, ca_key)
    client, client_key = _leaf("gateway client", ExtendedKeyUsageOID.CLIENT_AUTH, ca, ca_key)
    pem = serialization.Encoding.PEM
    pki = Pki(directory / "ca.pem", directory / "broker.pem", directory / "client.pem", directory / "client.key")
    pki.ca.write_bytes(ca.public_bytes(pem))
    pki.broker.write_bytes(_pem_key(broker_key) + broker.public_bytes(pem) + ca.public_bytes(pem))
    pki.client_cert.write_bytes(client.public_bytes(pem))
    pki.client_key.write_bytes(_pem_key(client_key))
    return pki
