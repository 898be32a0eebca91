"""HTTP/3 streams under Hypercorn: what their QUIC stream holds, and whether its client left.

Quarantined, as direct.py is: the only module besides it that reaches into Hypercorn's (and
aioquic's) inside, imported lazily by h3.load and only when HERALD_QUIC_BIND is set. It is
not a speed-up but a bound. Hypercorn's HTTP/3 ``send`` hands a body to aioquic, which keeps
whatever flow control does not let out yet, without limit, and returns at once: a client
that stops reading never holds a write up, so no send deadline would ever fire, and its
stream would take memory for every event until the process ran out. Nor does Hypercorn tell
the app when the QUIC connection ends or the client stops the stream (no http.disconnect),
and aioquic raises on a write to a stream the client stopped. ``QuicSend`` wraps a stream's
``send`` with what the routes need to treat it as they treat a TCP connection.

And a client must not bring HTTP/3 down for everyone: an exception in Hypercorn's handling of
one connection's frames (a body still arriving for a request already answered, a refused
WebSocket request sending on) ends Hypercorn's whole QUIC server task. ``contain`` keeps
such an exception to the connection that caused it.
"""

from __future__ import annotations

import importlib.metadata
import logging

from aioquic.h3.connection import ErrorCode, H3Connection
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import QuicEvent
from hypercorn.protocol.h3 import H3Protocol
from hypercorn.protocol.http_stream import HTTPStream

from ..asgi import Message, Send

log = logging.getLogger(__name__)

# The Hypercorn and aioquic releases whose insides this module was written and tested against.
TESTED = {"hypercorn": ("0.17", "0.18"), "aioquic": ("1.2", "1.3", "1.4", "1.5", "1.6", "1.7")}


def probe() -> bool:
    """Whether the installed Hypercorn and aioquic are ones this module knows (else logged)."""
    for package, releases in TESTED.items():
        version = importlib.metadata.version(package)
        if ".".join(version.split(".")[:2]) not in releases:
            log.error("HTTP/3: %s %s is not one of %s", package, version, ", ".join(releases))
            return False
    quic = QuicConnection.__init__.__code__.co_names
    missing = [
        name
        for owner, name in ((H3Protocol, "stream_send"), (HTTPStream, "app_send"))
        if not hasattr(owner, name)
    ] + [name for name in ("_streams", "_close_event") if name not in quic]
    if missing:
        log.error("HTTP/3: this Hypercorn or aioquic lacks %s", ", ".join(missing))
        return False
    return True


def contain() -> None:
    """Make Hypercorn's HTTP/3 protocol answer for one connection's failures itself."""
    handle = H3Protocol.handle
    if getattr(handle, "herald_contained", False):
        return

    async def contained(self: H3Protocol, event: QuicEvent) -> None:
        try:
            await handle(self, event)
        except KeyError as exc:
            # Body for a stream Hypercorn let go of (answered before its body was all in,
            # such as a 413): the client is told to stop sending it.
            quic = self.connection._quic
            stream_id = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            if stream_id is None or stream_id not in quic._streams:
                raise
            quic.stop_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
            await self.send()
        except Exception:
            log.warning("HTTP/3: closing a connection Hypercorn failed to handle", exc_info=True)
            self.connection._quic.close(error_code=ErrorCode.H3_INTERNAL_ERROR)
            await self.send()

    contained.herald_contained = True  # type: ignore[attr-defined]
    H3Protocol.handle = contained  # type: ignore[method-assign,assignment]


def wrap(send: Send) -> QuicSend | None:
    """``send`` of a response Hypercorn serves over HTTP/3, wrapped; None for any other."""
    stream = getattr(send, "__self__", None)
    protocol = getattr(getattr(stream, "send", None), "__self__", None)
    if not isinstance(stream, HTTPStream) or not isinstance(protocol, H3Protocol):
        return None
    connection = protocol.connection
    if not isinstance(connection, H3Connection):
        return None
    return QuicSend(send, protocol, connection._quic, stream.stream_id)


class QuicSend:
    """An HTTP/3 response's ``send``: a no-op once its client is gone (as Hypercorn's is for
    a closed TCP connection), with what its QUIC stream still holds and a way to drop it."""

    __slots__ = ("_protocol", "_quic", "_send", "_stream_id")

    def __init__(self, send: Send, protocol: H3Protocol, quic: QuicConnection, stream_id: int):
        self._send = send
        self._protocol = protocol
        self._quic = quic
        self._stream_id = stream_id

    async def __call__(self, message: Message) -> None:
        if not self.gone():
            await self._send(message)

    def gone(self) -> bool:
        """The connection is closing or closed, or the client stopped (or reset) the stream."""
        quic = self._quic
        if quic._close_event is not None:
            return True
        stream = quic._streams.get(self._stream_id)
        # A stream aioquic has discarded was finished; one the client stopped is reset.
        return stream is None or stream.sender._reset_error_code is not None

    def unacknowledged(self) -> int:
        """Bytes written to the stream that the client has not acknowledged yet."""
        stream = self._quic._streams.get(self._stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return sender._buffer_stop - sender._buffer_start

    async def abort(self) -> None:
        """Reset the stream: aioquic drops what it holds for it, the client sees it end."""
        if not self.gone():
            self._quic.reset_stream(self._stream_id, ErrorCode.H3_REQUEST_CANCELLED)
            await self._protocol.send()
