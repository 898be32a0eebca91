"""The fast path's inside: whole frames onto Hypercorn's HTTP/1.1 connections, skipping ASGI.

Quarantined: the only module of Herald that reaches into Hypercorn's private parts, imported
lazily by fast_path.load and used only when ``probe`` recognises the running Hypercorn. Under
Hypercorn over HTTP/1.1 a WebSocket or an SSE stream can skip the per-message ASGI machinery:
a writer task puts already-framed bytes onto the stream, and an idle connection takes an event
straight from the fan-out (``SocketWrite``), with no task woken at all. A connection it does
not recognise (HTTP/2, another server) gets None and the plain ASGI path.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

import h11
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.protocol.events import Data
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream

from ..asgi import Send
from ..events import EventRun
from ..metrics import Tally
from ..wire import Format
from .fast_path import FastPath, FrameOf, WriteBytes

log = logging.getLogger(__name__)

# The Hypercorn releases whose insides this module was written and tested against.
TESTED = ("0.17", "0.18")
# struct linger {l_onoff = 1, l_linger = 0}: close() resets the connection.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


def probe() -> FastPath | None:
    """The fast path if the installed Hypercorn is one it knows, else None (logged once)."""
    version = importlib.metadata.version("hypercorn")
    release = ".".join(version.split(".")[:2])
    if release not in TESTED:
        log.warning(
            "direct writes: off: Hypercorn %s is not one of the releases they were tested with"
            " (%s); every frame goes through ASGI",
            version,
            ", ".join(TESTED),
        )
        return None
    missing = [
        name
        for owner, name in (
            # The chain a connection's ASGI send leads down (each one's instance parts are
            # checked again per connection).
            (WSStream, "app_send"),
            (HTTPStream, "app_send"),
            (H11Protocol, "stream_send"),
            (TCPServer, "protocol_send"),
            (ASGIWebsocketState, "CONNECTED"),
            (ASGIHTTPState, "RESPONSE"),
        )
        if not hasattr(owner, name)
    ]
    if missing:
        log.warning("direct writes: off: Hypercorn %s lacks %s", version, ", ".join(missing))
        return None
    log.info("direct writes: on (Hypercorn %s, HTTP/1.1 connections)", version)
    return DirectWrites()


class DirectWrites:
    """The fast path for connections served by Hypercorn over HTTP/1.1."""

    def ws_writer(self, send: Send) -> WriteBytes | None:
        """Whole WebSocket frames onto Hypercorn's stream: what its ``websocket.send`` does
        after wsproto framed a message, for frames already framed (many in one write)."""
        stream = getattr(send, "__self__", None)
        if not isinstance(stream, WSStream):
            return None

        async def write(data: bytes) -> None:
            if not stream.closed and stream.state is ASGIWebsocketState.CONNECTED:
                await stream.send(Data(stream_id=stream.stream_id, data=data))

        return write

    def ws_socket(
        self, send: Send, fmt: Format, frame: FrameOf, tally: Tally
    ) -> SocketWrite | None:
        """The socket under a WebSocket served by Hypercorn over HTTP/1.1, else None."""
        stream = getattr(send, "__self__", None)
        server = _tcp_server(stream)
        if not isinstance(stream, WSStream) or server is None:
            return None

        def is_open() -> bool:
            return stream.state is ASGIWebsocketState.CONNECTED and not stream.closed

        return SocketWrite(server, is_open, fmt, frame, tally)

    def sse_socket(self, send: Send, frame: FrameOf, tally: Tally) -> SocketWrite | None:
        """The socket under a streamed response (headers sent) with chunked framing, else None.

        ``frame`` gives whole HTTP/1.1 chunks: h11 frames a streamed body of an HTTP/1.1
        client in chunks, and writing ours between its own keeps the body well-formed.
        """
        stream = getattr(send, "__self__", None)
        server = _tcp_server(stream)
        if not isinstance(stream, HTTPStream) or server is None:
            return None
        connection = getattr(stream.send.__self__, "connection", None)  # type: ignore[attr-defined]
        if not isinstance(connection, h11.Connection) or connection.their_http_version != b"1.1":
            return None
        if type(getattr(connection, "_writer", None)).__name__ != "ChunkedWriter":
            return None

        def is_open() -> bool:
            return stream.state is ASGIHTTPState.RESPONSE and not stream.closed

        return SocketWrite(server, is_open, Format.SSE, frame, tally)


class SocketWrite:
    """An idle connection's socket, written from the fan-out (see Outbox.direct).

    Only while the socket has taken every earlier byte (nothing buffered in the transport,
    no write of Hypercorn's own waiting) and the stream is still open: a client that reads
    slowly makes its events queue, and its writer then waits out the socket with the send
    deadline, as for every other frame.
    """

    __slots__ = ("_fmt", "_frame", "_is_open", "_kind", "_lock", "_tally", "_transport")

    def __init__(
        self,
        server: TCPServer,
        is_open: Callable[[], bool],
        fmt: Format,
        frame: FrameOf,
        tally: Tally,
    ) -> None:
        self._transport = server.writer.transport
        self._lock = server.send_lock
        self._is_open = is_open
        self._fmt = fmt
        self._frame = frame
        # Where a run keeps its bytes for connections like this one.
        self._kind = f"{frame.__name__}/{fmt.value}"
        self._tally = tally

    def deliver(self, run: EventRun) -> bool:
        transport = self._transport
        if (
            transport.get_write_buffer_size()
            or self._lock.locked()
            or transport.is_closing()
            or not self._is_open()
        ):
            return False
        data = run.encoded.get(self._kind)
        if data is None:
            data = run.encoded[self._kind] = self._frame(run, self._fmt)
        transport.write(data)
        self._tally.count += len(run.events)
        return True

    def abort(self) -> None:
        """Drop the connection now, with whatever it still buffers, and reset it.

        For a client past the send deadline: the server's own close would first wait for
        the buffered bytes to drain, which a client that stopped reading never lets happen;
        and a plain close leaves the kernel holding the unsent bytes, trying to deliver
        them. A zero linger time makes the close a reset that frees them at once.
        """
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self._transport.abort()


def _tcp_server(stream: object) -> TCPServer | None:
    """The TCPServer under a stream of Hypercorn's HTTP/1.1 protocol on asyncio."""
    protocol = getattr(getattr(stream, "send", None), "__self__", None)
    if not isinstance(protocol, H11Protocol):
        return None
    server: Any = getattr(protocol.send, "__self__", None)
    if not isinstance(server, TCPServer):
        return None
    # What SocketWrite uses; a Hypercorn without them gets the ASGI path.
    writer = getattr(server, "writer", None)
    if not isinstance(writer, asyncio.StreamWriter) or not hasattr(server, "send_lock"):
        return None
    return server
