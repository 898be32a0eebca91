"""Whether frames may skip ASGI: the optional fast path, chosen once at startup.

Herald's routes speak plain ASGI. Under Hypercorn over HTTP/1.1 they can do better: write
already-framed bytes onto the connection's socket, even straight from the fan-out with no task
woken. That needs Hypercorn's private parts, so it lives in one module (transports/direct.py),
imported only here, only when ``HERALD_DIRECT_WRITES=auto``, and used only if it recognises
the running Hypercorn; everything works without it (``off``), and the tests run both ways.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..asgi import Send
from ..events import EventRun
from ..metrics import Tally
from ..outbox import DirectWrite
from ..wire import Format

log = logging.getLogger(__name__)

# A run's bytes for one kind of connection (shared by all connections of that kind).
FrameOf = Callable[[EventRun, Format], bytes]
WriteBytes = Callable[[bytes], Awaitable[None]]


class FastPath(Protocol):
    """What the fast path offers a connection; each returns None where it cannot serve it
    (another server, HTTP/2, a stream not in the expected state)."""

    def ws_socket(
        self, send: Send, fmt: Format, frame: FrameOf, tally: Tally
    ) -> DirectWrite | None: ...
    def sse_socket(self, send: Send, frame: FrameOf, tally: Tally) -> DirectWrite | None: ...
    def ws_writer(self, send: Send) -> WriteBytes | None: ...


def load(mode: str) -> FastPath | None:
    """The fast path for ``HERALD_DIRECT_WRITES`` (``auto`` or ``off``), or None."""
    if mode == "off":
        log.info("direct writes: off (HERALD_DIRECT_WRITES=off): every frame goes through ASGI")
        return None
    try:
        from . import direct  # the only import of Hypercorn's private parts
    except ImportError as exc:
        log.warning("direct writes: off: this Hypercorn is not one they know (%s)", exc)
        return None
    return direct.probe()
