"""Session fixtures: one real Kafka broker and one Herald server for the integration tests."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from .processes import HeraldProcess
from .secure_kafka import SecureKafkaBroker
from .serving import StartServer
from .tokens import ISSUED, SECRET


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafkaBroker]:
    """The session's local broker, with two listeners: PLAINTEXT for most tests, SASL_SSL
    (SCRAM-SHA-512 over TLS, with a CA made for the run) for those about Kafka security."""
    broker = SecureKafkaBroker(tmp_path_factory.mktemp("kafka"))
    broker.up()
    try:
        yield broker
    finally:
        broker.discard()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """A broker for the session: TEST_KAFKA_BOOTSTRAP if given, else the local one's plain
    listener."""
    given = os.environ.get("TEST_KAFKA_BOOTSTRAP")
    if given:
        return given
    broker: SecureKafkaBroker = request.getfixturevalue("kafka_broker")
    return broker.plaintext_bootstrap


@pytest.fixture(scope="session")
def secure_kafka(kafka_broker: SecureKafkaBroker) -> SecureKafkaBroker:
    """The local broker, for its SASL_SSL listener (``bootstrap``) and what reaches it."""
    return kafka_broker


def _servers(kafka_bootstrap: str, logs: Path) -> Iterator[StartServer]:
    """Starts Herald processes with extra settings; all are stopped when the fixture ends.

    An idle instance still reads Kafka (every exposed partition, every few hundred ms): one
    left running after its tests would take CPU from all later ones.
    """
    started: list[HeraldProcess] = []

    async def start(**settings: str) -> HeraldProcess:
        server = HeraldProcess(kafka_bootstrap, logs / f"herald-{len(started)}.log", **settings)
        server.start()
        started.append(server)
        await server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server_factory(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartServer]:
    """Servers for session fixtures: stopped when the session ends."""
    yield from _servers(kafka_bootstrap, tmp_path_factory.mktemp("herald"))


@pytest.fixture(scope="module")
def module_server_factory(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartServer]:
    """Servers for one module's tests: stopped when its last test is done."""
    yield from _servers(kafka_bootstrap, tmp_path_factory.mktemp("herald"))


@pytest.fixture
def function_server_factory(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartServer]:
    """Servers for one test: stopped when it ends."""
    yield from _servers(kafka_bootstrap, tmp_path_factory.mktemp("herald"))


@pytest.fixture(scope="session")
async def server(server_factory: StartServer) -> AsyncIterator[HeraldProcess]:
    """The shared Herald server: topics matching ``it-*`` and ``other-*`` are exposed."""
    process = await server_factory(
        topics=r"(it|other)-[A-Za-z0-9._-]+", sse_heartbeat_s="0.5", max_body_bytes="65536"
    )
    yield process


@pytest.fixture
def topic() -> str:
    """A fresh topic name per test, so tests never see each other's events."""
    return f"it-{uuid.uuid4().hex[:12]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest-xdist hands tests to its workers by node id: of two items with one id, one runs.
    repeated = sorted(nodeid for nodeid, n in Counter(i.nodeid for i in items).items() if n > 1)
    if repeated:
        raise pytest.UsageError(f"tests share a node id (only one would run): {repeated}")
    # Wherever it lives: a test that needs the broker (through any fixture) is marked.
    for item in items:
        if {"kafka_bootstrap", "secure_kafka"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session", autouse=True)
def no_token_in_any_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole suite: no token any test issued, nor the secret that signed them,
    appears in any process's log (text or JSON, access logs included)."""
    yield
    secrets = {*ISSUED, SECRET}
    leaked = [
        str(path)
        for path in tmp_path_factory.getbasetemp().rglob("*.log")
        if any(secret in path.read_text(errors="replace") for secret in secrets)
    ]
    assert not leaked, f"tokens found in logs: {leaked}"
