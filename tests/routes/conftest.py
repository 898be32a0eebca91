"""Every route in process: Herald on a loopback Hypercorn over the in-memory Kafka.

Each module runs twice: once with the fast path (direct socket writes) and once with every
frame through plain ASGI, so the public path is always known to work. The servers keep an
access log, and what they log is checked for secrets in both log formats.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import pytest

from service.kafka.memory import MemoryKafka
from service.logs import EscapingFormatter, JsonFormatter, RequestIds

from ..serving import InProcess, StartServer, in_process
from ..tokens import ISSUED, SECRET

# The shared server's settings (as the integration suite's shared server has them).
SHARED = {
    "topics": r"(it|other)-[A-Za-z0-9._-]+",
    "sse_heartbeat_s": "0.5",
    "max_body_bytes": "65536",
    "access_log": "true",
}

# A page origin the secured servers list (HERALD_ALLOWED_ORIGINS).
APP = "https://app.example"
# Access enforced: it-* is declared public, everything else (priv-*) needs a token; only
# tokens publish; one listed page origin.
SECURED = {
    "topics": "(it|priv)-.*",
    "public_topics": "it-.*",
    "publish_open": "false",
    "jwt_secret": SECRET,
    "jwt_leeway_s": "0",
    "allowed_origins": APP,
}


@pytest.fixture(scope="module", params=["auto", "off"], ids=["direct", "asgi"])
def direct_writes(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture(scope="module")
def cluster(direct_writes: str) -> MemoryKafka:
    """The in-memory Kafka every server of a module runs on, as instances share a cluster."""
    return MemoryKafka()


async def _factory(cluster: MemoryKafka, direct_writes: str) -> AsyncIterator[StartServer]:
    async with AsyncExitStack() as stack:

        async def start(**settings: str) -> InProcess:
            settings.setdefault("direct_writes", direct_writes)
            settings.setdefault("access_log", "true")
            return await stack.enter_async_context(in_process(cluster, **settings))

        yield start


@pytest.fixture(scope="module")
async def module_server_factory(
    cluster: MemoryKafka, direct_writes: str
) -> AsyncIterator[StartServer]:
    """Servers for one module's tests: stopped when its last test is done."""
    async for start in _factory(cluster, direct_writes):
        yield start


@pytest.fixture
async def function_server_factory(
    cluster: MemoryKafka, direct_writes: str
) -> AsyncIterator[StartServer]:
    """Servers for one test: stopped when it ends."""
    async for start in _factory(cluster, direct_writes):
        yield start


@pytest.fixture(scope="module")
async def server(cluster: MemoryKafka, direct_writes: str) -> AsyncIterator[InProcess]:
    """The module's shared server: topics matching ``it-*`` and ``other-*`` are exposed."""
    async with in_process(cluster, direct_writes=direct_writes, **SHARED) as served:
        yield served


# Whose records are the server's: Herald's own and the libraries it runs on. (The tests'
# clients, httpx and websockets, log the URLs they ask for, tokens and all.)
_SERVER_LOGGERS = ("service", "herald", "hypercorn", "quart", "aiokafka", "asyncio")
# Each record as HERALD_LOG_FORMAT=text and =json write it (the JSON one with its fields).
_FORMATS = (EscapingFormatter("%(levelname)s %(name)s: %(message)s"), JsonFormatter())


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RequestIds())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in _SERVER_LOGGERS:
            self.lines += [formatter.format(record) for formatter in _FORMATS]


@pytest.fixture(autouse=True)
def no_token_in_the_log() -> Iterator[None]:
    """After each test: no token any test issued (in a header, a cookie or the query) and no
    signing secret appears in what the servers logged, as text or as JSON."""
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(records)
        root.setLevel(level)
    secrets = {*ISSUED, SECRET}
    leaked = [line for line in records.lines if any(secret in line for secret in secrets)]
    assert not leaked, f"tokens found in the log: {leaked[:3]}"
