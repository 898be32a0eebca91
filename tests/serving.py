"""Herald served in this process: Hypercorn on a loopback port, the in-memory Kafka by default.

Every route runs as in production (the same app factory, server configuration and fast path)
with no JVM and no subprocess; the real-broker suites keep what only a broker can show.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, cast

from hypercorn.asyncio import serve
from hypercorn.typing import ASGIFramework

from service.app import Herald, create_app
from service.config import Settings, load_settings
from service.kafka import Kafka
from service.kafka.memory import MemoryKafka
from service.server import hypercorn_config
from service.tracing import Tracing

# What the in-process servers of the tests run with unless a test says otherwise: open
# publishing (most tests are about delivery, not access), no publish rate limit worth the
# name, and topics found at once (the in-memory cluster costs nothing to ask).
DEFAULTS = {
    # Nothing is public unless declared so: the tests that are not about access read freely.
    "public_topics": ".*",
    "publish_open": "true",
    "publish_rate_per_address": "1000000",
    "publish_burst_per_address": "1000000",
    # Every test makes topics of its own, all from one address.
    "topic_creations_per_hour": "1000000",
    "topic_refresh_s": "0.05",
}


class Served(Protocol):
    """A running Herald, in this process or another: where clients reach it."""

    @property
    def base_url(self) -> str: ...
    @property
    def ws_url(self) -> str: ...
    @property
    def port(self) -> int: ...


class StartServer(Protocol):
    """Starts a Herald with ``HERALD_*`` settings given as keyword arguments."""

    def __call__(self, **settings: str) -> Awaitable[Served]: ...


@dataclass
class InProcess:
    """A Herald serving in this process, with the Kafka it runs on."""

    base_url: str
    ws_url: str
    settings: Settings
    herald: Herald
    kafka: Kafka

    @property
    def port(self) -> int:
        return self.settings.port

    @property
    def quic_url(self) -> str:
        """Where HTTP/3 is served (with ``quic_bind`` given, any address: a free UDP port)."""
        assert self.settings.quic_bind, "this server serves no HTTP/3"
        return f"https://{self.settings.quic_bind}"

    @property
    def memory(self) -> MemoryKafka:
        """The in-memory cluster (for tests that make it fail or forget)."""
        assert isinstance(self.kafka, MemoryKafka), "this server runs on a real Kafka"
        return self.kafka


def settings_of(bind: str, **settings: str) -> Settings:
    """Settings from ``HERALD_*``-style values, parsed as the environment's would be."""
    values = {**DEFAULTS, **settings, "bind": bind}
    return load_settings({f"HERALD_{name.upper()}": value for name, value in values.items()})


@asynccontextmanager
async def in_process(
    kafka: Kafka | None = None, *, tracing: Tracing | None = None, **settings: str
) -> AsyncIterator[InProcess]:
    """A Herald on a free loopback port until the block ends (``tracing``: its spans)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    port = listener.getsockname()[1]
    quic_fd = None
    if "quic_bind" in settings:
        # HTTP/3 on a UDP socket of its own, as ``serve --workers`` hands one to a worker.
        quic = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        quic.bind(("127.0.0.1", 0))
        settings["quic_bind"] = f"127.0.0.1:{quic.getsockname()[1]}"
        quic_fd = quic.detach()
    config_settings = settings_of(f"127.0.0.1:{port}", **settings)
    kafka = kafka or MemoryKafka()
    herald = create_app(config_settings, kafka, tracing=tracing or Tracing())
    # Hypercorn takes the sockets over (and closes them when it stops).
    config = hypercorn_config(config_settings, listener.detach(), quic_fd)
    stop = asyncio.Event()
    app = cast(ASGIFramework, herald.asgi)
    serving = asyncio.create_task(
        serve(app, config, shutdown_trigger=stop.wait, mode="asgi"), name=f"herald:{port}"
    )
    try:
        async with asyncio.timeout(30):
            ready = asyncio.ensure_future(herald.lifecycle.wait_ready())
            await asyncio.wait([ready, serving], return_when=asyncio.FIRST_COMPLETED)
            if serving.done():
                ready.cancel()
                serving.result()  # raises what stopped it
                raise RuntimeError("the server stopped before it was ready")
        secure = "s" if config_settings.tls_cert else ""
        yield InProcess(
            f"http{secure}://127.0.0.1:{port}",
            f"ws{secure}://127.0.0.1:{port}",
            config_settings,
            herald,
            kafka,
        )
    finally:
        herald.lifecycle.begin_shutdown()
        stop.set()
        await serving
