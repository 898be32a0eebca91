"""Throw-away certificates for the tests: a CA, a server certificate for 127.0.0.1 and
localhost (a Kafka broker's, or Herald's for HTTPS and HTTP/3), and a client certificate."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certificates:
    """Files written by ``make_certificates``, all PEM."""

    ca_file: Path  # the CA certificate: what clients (and the broker, for mTLS) trust
    ca_key: Path
    broker_keystore: Path  # the broker's PKCS#8 key, then its certificate, then the CA's
    client_cert: Path  # a client certificate signed by the CA (for ssl.client.auth)
    client_key: Path
    server_cert: Path  # the same server certificate for Herald (HERALD_TLS_CERT), with the CA
    server_key: Path
    server_spki: str  # base64 SHA-256 of its public key, as Chromium's flags name a key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Kafka's PEM key store reads PKCS#8 only ("BEGIN PRIVATE KEY"), not "BEGIN EC PRIVATE KEY".
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def make_certificates(directory: Path, days: int = 7) -> Certificates:
    """A new CA, a server certificate for 127.0.0.1/localhost (for the broker and for Herald)
    and a client one, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Herald test CA"))
        .issuer_name(_name("Herald test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        common_name: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName] | None
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    broker_key, broker_cert = leaf(
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key, client_cert = leaf("herald", ExtendedKeyUsageOID.CLIENT_AUTH, None)
    spki = broker_cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    pem = serialization.Encoding.PEM
    certs = Certificates(
        ca_file=directory / "ca.crt",
        ca_key=directory / "ca.key",
        broker_keystore=directory / "broker.pem",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        server_spki=base64.b64encode(hashlib.sha256(spki).digest()).decode(),
    )
    _write(certs.ca_file, ca_cert.public_bytes(pem))
    _write(certs.ca_key, _private_key_pem(ca_key), private=True)
    _write(
        certs.broker_keystore,
        _private_key_pem(broker_key) + broker_cert.public_bytes(pem) + ca_cert.public_bytes(pem),
        private=True,
    )
    _write(certs.client_cert, client_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    _write(certs.client_key, _private_key_pem(client_key), private=True)
    _write(certs.server_cert, broker_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    _write(certs.server_key, _private_key_pem(broker_key), private=True)
    return certs
