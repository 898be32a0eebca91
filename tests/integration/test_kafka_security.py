"""Herald against a broker that wants SASL_SSL: what an operator sees when the login or the
certificate is wrong (the right ones: tests/deploy/test_wheel.py, from the installed wheel).

Kept not ready, one log line that names the cause and the settings to check, /readyz saying
the same, and no password anywhere in the log, however many times the consumer retries.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from ..certificates import make_certificates
from ..processes import HeraldProcess
from ..secure_kafka import SCRAM_MECHANISM, SecureKafkaBroker

WRONG_PASSWORD = "not-the-password-Zq81"
# Retries seen before the log is read: enough that a line per retry would show.
RETRIES = 3


def secured(broker: SecureKafkaBroker) -> dict[str, str]:
    """HERALD_* settings (lower case) that reach ``broker`` as its SCRAM user over TLS."""
    return {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": SCRAM_MECHANISM,
        "kafka_sasl_username": broker.username,
        "kafka_sasl_password": broker.password,
        "kafka_ssl_ca_file": str(broker.ca_file),
        "topics": "it-.*",
    }


async def _connect_failures(client: httpx.AsyncClient) -> float:
    name = "herald_kafka_connect_failures_total"
    text = (await client.get("/metrics")).text
    return float(next(x for x in text.splitlines() if x.startswith(f"{name} ")).split()[1])


async def _after_retries(server: HeraldProcess) -> httpx.Response:
    """/readyz once the server has failed to connect RETRIES times (another process: polled)."""
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        async with asyncio.timeout(60):
            while True:
                assert server.process is not None and server.process.poll() is None, server.log()
                try:
                    if await _connect_failures(client) >= RETRIES:
                        return await client.get("/readyz")
                except httpx.TransportError:
                    pass  # not listening yet
                await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("broken", "cause", "hint"),
    [
        (
            "password",
            "SaslAuthenticationFailed",
            "the broker refused the login: check HERALD_KAFKA_SASL_USERNAME",
        ),
        (
            "certificate",
            "CERTIFICATE_VERIFY_FAILED",
            "not signed by a CA Herald trusts (HERALD_KAFKA_SSL_CA_FILE",
        ),
    ],
)
async def test_a_refused_connection_keeps_herald_not_ready_and_says_why_once(
    secure_kafka: SecureKafkaBroker, tmp_path: Path, broken: str, cause: str, hint: str
) -> None:
    settings = secured(secure_kafka)
    if broken == "password":
        settings["kafka_sasl_password"] = WRONG_PASSWORD
    else:  # a CA that did not sign the broker's certificate
        settings["kafka_ssl_ca_file"] = str(make_certificates(tmp_path / "stranger").ca_file)
    server = HeraldProcess(secure_kafka.bootstrap, tmp_path / "herald.log", **settings)
    server.start()
    try:
        readyz = await _after_retries(server)
    finally:
        server.stop()
    log = server.log_path.read_text()

    assert readyz.status_code == 503
    body = readyz.json()
    assert body["checks"]["consumer"] is False
    where = f"cannot connect to Kafka at {secure_kafka.bootstrap} (SASL_SSL, {SCRAM_MECHANISM}"
    assert body["reason"].startswith(where), body
    assert cause in body["reason"] and hint in body["reason"], body

    # One line for all the retries, saying what /readyz says; aiokafka's own lines dropped.
    said = [line for line in log.splitlines() if "cannot connect to Kafka" in line]
    assert len(said) == 1, log
    assert body["reason"] in said[0]
    assert "Unable connect to" not in log and "Unable to bootstrap" not in log, log
    for secret in (secure_kafka.password, WRONG_PASSWORD):
        assert secret not in log and secret not in readyz.text
