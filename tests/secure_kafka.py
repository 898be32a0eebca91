"""A local Kafka broker whose client listener is SASL_SSL, and the certificates it needs.

``make_certificates`` writes a throw-away CA and a broker certificate for 127.0.0.1 and
localhost; ``SecureKafkaBroker`` starts deploy/kafka/kafka.sh with KAFKA_SECURITY=sasl_ssl on
free loopback ports, one SCRAM user made when its storage is formatted. Clients trust
``ca_file`` and log in as ``username``/``password`` (see ``client_options``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .processes import KAFKA_SCRIPT, KAFKA_TEST_ENV, free_ports, run_script

SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class Certificates:
    """Files written by ``make_certificates``, all PEM."""

    ca_file: Path  # the CA certificate: what clients (and the broker, for mTLS) trust
    ca_key: Path
    broker_keystore: Path  # the broker's PKCS#8 key, then its certificate, then the CA's
    client_cert: Path  # a client certificate signed by the CA (for ssl.client.auth)
    client_key: Path


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
    """A new CA, a broker certificate for 127.0.0.1/localhost and a client one, in ``directory``."""
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

    pem = serialization.Encoding.PEM
    certs = Certificates(
        ca_file=directory / "ca.crt",
        ca_key=directory / "ca.key",
        broker_keystore=directory / "broker.pem",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
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
    return certs


class SecureKafkaBroker:
    """One local KRaft node (kafka.sh, KAFKA_SECURITY=sasl_ssl) on free loopback ports.

    ``bootstrap`` is its SASL_SSL listener; ``plaintext_bootstrap`` the PLAINTEXT listener its
    brokers talk on (loopback only), handy for checking what Herald did without credentials.
    ``client_auth="required"`` also asks clients for a certificate signed by the CA.
    """

    def __init__(
        self,
        data_dir: Path,
        username: str = "herald",
        password: str | None = None,
        client_auth: str = "none",
        security: str = "sasl_ssl",
    ) -> None:
        # Client, controller and internal port: all three held open while choosing.
        self.port, self.controller_port, self.internal_port = free_ports(3)
        self.data_dir = data_dir
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.plaintext_bootstrap = f"127.0.0.1:{self.internal_port}"
        self.username = username
        self.password = password or secrets.token_urlsafe(18)
        self.client_auth = client_auth
        self.security = security
        self.certificates = make_certificates(data_dir / "tls")
        self.ca_file = self.certificates.ca_file

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            **KAFKA_TEST_ENV,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_INTERNAL_PORT": str(self.internal_port),
            "KAFKA_DATA_DIR": str(self.data_dir / "kafka"),
            "KAFKA_SECURITY": self.security,
            "KAFKA_SSL_KEYSTORE_LOCATION": str(self.certificates.broker_keystore),
            "KAFKA_SSL_CLIENT_AUTH": self.client_auth,
            "KAFKA_SSL_TRUSTSTORE_LOCATION": str(self.ca_file),
            "KAFKA_SCRAM_USERS": f"{self.username}={self.password}",
        }

    def up(self) -> None:
        run_script(KAFKA_SCRIPT, "up", env=self._env())

    def down(self) -> None:
        run_script(KAFKA_SCRIPT, "down", env=self._env())

    def discard(self) -> None:
        """Stop at once (SIGKILL): for teardown, when the data goes next."""
        run_script(KAFKA_SCRIPT, "discard", env=self._env())

    def ssl_context(self, client_certificate: bool = False) -> ssl.SSLContext:
        """A client context trusting only the test CA (with its client certificate if asked)."""
        if client_certificate:
            context: ssl.SSLContext = create_ssl_context(
                cafile=str(self.ca_file),
                certfile=str(self.certificates.client_cert),
                keyfile=str(self.certificates.client_key),
            )
        else:
            context = create_ssl_context(cafile=str(self.ca_file))
        return context

    def client_options(self, mechanism: str = SCRAM_MECHANISM) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        protocol = self.security.upper()
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": protocol,
        }
        if protocol.startswith("SASL_"):
            options |= {
                "sasl_mechanism": mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password,
            }
        if protocol.endswith("SSL"):
            options["ssl_context"] = self.ssl_context(client_certificate=self.client_auth != "none")
        return options
