"""HTTP/3 responses held to the rules of TCP ones: a client that stops reading is cut, one that
left is noticed.

Hypercorn serves HTTP/3 through aioquic, whose streams keep every byte written to them for
as long as the client's flow control holds it back: ``send`` never waits. So ``QuicWindow``
makes a write over HTTP/3 count as in progress until the client has acknowledged all but
``WINDOW`` bytes of its stream (what an asyncio transport's write buffer is to TCP): then
the send deadline and the bounded queue behind it hold as they do over TCP. How much a
stream holds is Hypercorn's and aioquic's inside, so it comes from a quarantined module
(h3_inside.py), loaded only when HERALD_QUIC_BIND is set; it also keeps a failure in
Hypercorn's handling of one QUIC connection from ending HTTP/3 for all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..asgi import Message, Scope, Send

# What a QUIC stream may hold unacknowledged before its writer waits (as TCP's transport
# buffer does in asyncio: 64 KiB before drain() waits).
WINDOW = 64 * 1024
# How often a waiting writer looks again: aioquic tells no one when an ACK frees its buffer.
# Only writers past their window wait, so a healthy stream never polls.
_POLL_S = 0.02

# Wraps an HTTP/3 response's send (None: not one this knows).
Wrap = Callable[[Send], "QuicWindow | None"]


@runtime_checkable
class QuicWindow(Protocol):
    """An HTTP/3 response's ``send`` (a no-op once the client is gone), with its stream."""

    async def __call__(self, message: Message) -> None: ...
    def gone(self) -> bool: ...
    def unacknowledged(self) -> int: ...
    async def abort(self) -> None: ...


def load() -> Wrap:
    """The wrapper for HTTP/3 responses; RuntimeError when this Hypercorn or aioquic is not one
    it knows (serving HTTP/3 without its bound would let a stalled client take the memory)."""
    from . import h3_inside  # the only import of the HTTP/3 inside

    if not h3_inside.probe():
        raise RuntimeError(
            "HTTP/3 is not served by this Hypercorn or aioquic release (see the log):"
            " unset HERALD_QUIC_BIND or install a tested one"
        )
    h3_inside.contain()
    return h3_inside.wrap


def over_h3(scope: Scope) -> bool:
    return scope.get("http_version") == "3"


async def drained(window: QuicWindow) -> bool:
    """Wait until ``window`` holds at most WINDOW unacknowledged bytes; False if its client
    left instead. The caller's send deadline bounds the wait."""
    while not window.gone():
        if window.unacknowledged() <= WINDOW:
            return True
        await asyncio.sleep(_POLL_S)
    return False
