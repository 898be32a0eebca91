"""Herald behind real caches and proxies: Debian's Varnish and nginx on loopback ports.

What the origin answered is read from its own /metrics (``herald_http_requests_total`` per
route and status), asked of the origin directly, never through the cache.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from ..processes import HeraldProcess, Nginx, Varnish
from ..serving import StartServer
from ..tokens import SECRET

SNAPSHOT = "snapshot"
HISTORY = "history"
POLL_S = 0.1
# A long-poll waits this long at most: longer than any test takes to publish.
MAX_WAIT_S = "30"


def origin_settings(**overrides: str) -> dict[str, str]:
    return {
        "topics": "cdn-.*",
        # Everything is private but what is declared public.
        "public_topics": "cdn-(?!priv-).*",
        "jwt_secret": SECRET,
        "max_wait_s": MAX_WAIT_S,
        "snapshot_max_age_s": "1",
        "snapshot_stale_while_revalidate_s": "30",
        # One proxy in front (nginx or Varnish): its X-Forwarded-* are believed.
        "trusted_proxies": "1",
        # As the image logs, and every request too: tokens ride in these tests' URLs and
        # headers, and the suite checks that none reaches a log.
        "log_format": "json",
        "access_log": "true",
        **overrides,
    }


@pytest.fixture(scope="module")
async def origin(module_server_factory: StartServer) -> HeraldProcess:
    return await module_server_factory(**origin_settings())


@pytest.fixture(scope="module")
def varnish(origin: HeraldProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Varnish]:
    cache = Varnish(tmp_path_factory.mktemp("varnish"))
    cache.up([origin])
    try:
        yield cache
    finally:
        cache.down()


@pytest.fixture(scope="module")
async def second_origin(module_server_factory: StartServer) -> HeraldProcess:
    return await module_server_factory(**origin_settings())


@pytest.fixture(scope="module")
def nginx(
    origin: HeraldProcess, second_origin: HeraldProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    proxy = Nginx(tmp_path_factory.mktemp("nginx"))
    proxy.up([origin, second_origin])
    try:
        yield proxy
    finally:
        proxy.down()


@pytest.fixture
def topic() -> str:
    return f"cdn-{uuid.uuid4().hex[:12]}"


async def origin_answers(origin: HeraldProcess, endpoint: str, status: int = 200) -> int:
    """How many requests to ``endpoint`` the origin answered with ``status`` so far."""
    return int(
        await _metric(origin, "herald_http_requests_total", endpoint=endpoint, status=status)
    )


async def waiting_long_polls(origin: HeraldProcess) -> int:
    return int(await _metric(origin, "herald_long_polls_waiting"))


async def purges(origin: HeraldProcess, outcome: str = "ok") -> int:
    return int(await _metric(origin, "herald_cache_purges_total", outcome=outcome))


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until it holds: the state of another process, with no event to await."""
    for _ in itertools.count():
        if await check():
            return
        await asyncio.sleep(POLL_S)


async def _metric(origin: HeraldProcess, name: str, **labels: object) -> float:
    """A sample of the origin's /metrics; 0 before it was first counted."""
    async with httpx.AsyncClient(base_url=origin.base_url) as client:
        text = (await client.get("/metrics")).text
    wanted = {label: str(value) for label, value in labels.items()}
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        sample_name, _, label_text = sample.partition("{")
        if sample_name == name and dict(_LABEL.findall(label_text)) == wanted:
            return float(value)
    return 0.0


_LABEL = re.compile(r'(\w+)="([^"]*)"')


def client_of(proxy: Nginx, timeout: float = 30) -> httpx.AsyncClient:
    """A client of ``proxy`` that trusts its certificate and offers HTTP/2."""
    return httpx.AsyncClient(
        base_url=proxy.base_url, verify=trusting(proxy), http2=True, timeout=timeout
    )


def trusting(proxy: Nginx) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(proxy.certificate))
