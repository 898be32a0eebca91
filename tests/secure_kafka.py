"""A local Kafka broker whose client listener is SASL_SSL, and the certificates it needs.

The CA and the broker certificate come from certificates.py; ``SecureKafkaBroker`` starts
deploy/kafka/kafka.sh with KAFKA_SECURITY=sasl_ssl on
free loopback ports, one SCRAM user made when its storage is formatted. Clients trust
``ca_file`` and log in as ``username``/``password`` (see ``client_options``).
"""

from __future__ import annotations

import os
import secrets
import ssl
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context

from .certificates import make_certificates
from .processes import KAFKA_SCRIPT, KAFKA_TEST_ENV, free_ports, run_script

SCRAM_MECHANISM = "SCRAM-SHA-512"


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
