"""An HTTP/3 client for the tests: httpx over aioquic's QUIC and HTTP/3 (over loopback UDP).

``h3_client`` gives an ``httpx.AsyncClient`` whose requests travel as HTTP/3 streams of one
QUIC connection, so the tests' httpx-based helpers (``clients.sse``, ``publish``) work over
it unchanged. ``H3Transport.stall`` stops taking datagrams: the client's QUIC then
acknowledges nothing, like a client whose reading stopped.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent


class _Http3(QuicConnectionProtocol):
    """aioquic's asyncio protocol with HTTP/3 on top: each stream's events in its queue."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        # Each stream's events; None once the connection ended.
        self.streams: dict[int, asyncio.Queue[H3Event | None]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            for queue in self.streams.values():
                queue.put_nowait(None)  # what waits for a stream learns it ended
        for http_event in self.http.handle_event(event):
            if isinstance(http_event, HeadersReceived | DataReceived):
                queue = self.streams.get(http_event.stream_id)
                if queue is not None:
                    queue.put_nowait(http_event)

    def new_stream(self) -> int:
        stream_id: int = self._quic.get_next_available_stream_id()
        self.streams[stream_id] = asyncio.Queue()
        return stream_id

    def cancel(self, stream_id: int) -> None:
        """Leave a response before its end, as a browser does: STOP_SENDING."""
        if self.streams.pop(stream_id, None) is not None:
            self._quic.stop_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
            self.transmit()


def _alive(event: H3Event | None) -> H3Event:
    if event is None:
        raise httpx.RemoteProtocolError("the QUIC connection ended")
    return event


class _Body(httpx.AsyncByteStream):
    def __init__(self, protocol: _Http3, stream_id: int, ended: bool) -> None:
        self._protocol = protocol
        self._stream_id = stream_id
        self._ended = ended

    async def __aiter__(self) -> AsyncIterator[bytes]:
        queue = self._protocol.streams[self._stream_id]
        while not self._ended:
            event = _alive(await queue.get())
            self._ended = getattr(event, "stream_ended", False)
            if isinstance(event, DataReceived) and event.data:
                yield event.data

    async def aclose(self) -> None:
        if not self._ended:
            self._protocol.cancel(self._stream_id)
        self._protocol.streams.pop(self._stream_id, None)


class H3Transport(httpx.AsyncBaseTransport):
    """httpx requests as streams of one QUIC connection (``protocol``)."""

    def __init__(self, protocol: _Http3, transport: asyncio.DatagramTransport) -> None:
        self._protocol = protocol
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        protocol = self._protocol
        stream_id = protocol.new_stream()
        # An extended CONNECT (RFC 9220: WebSocket over HTTP/3) names its protocol.
        tunnel = request.extensions.get("protocol")
        connect = [(b":protocol", tunnel.encode())] if tunnel else []
        headers = [
            (b":method", request.method.encode()),
            (b":scheme", request.url.raw_scheme),
            (b":authority", request.url.netloc),
            (b":path", request.url.raw_path),
            *connect,
        ] + [
            (name.lower(), value)
            for name, value in request.headers.raw
            if name.lower() not in (b"connection", b"host", b"transfer-encoding")
        ]
        protocol.http.send_headers(stream_id, headers)
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for chunk in request.stream:
            protocol.http.send_data(stream_id, chunk, end_stream=False)
        if request.method != "CONNECT":  # a tunnel (a WebSocket) stays open
            protocol.http.send_data(stream_id, b"", end_stream=True)
        protocol.transmit()
        event = _alive(await protocol.streams[stream_id].get())
        assert isinstance(event, HeadersReceived), event
        status = next(int(value) for name, value in event.headers if name == b":status")
        return httpx.Response(
            status,
            headers=[(name, value) for name, value in event.headers if not name.startswith(b":")],
            stream=_Body(protocol, stream_id, event.stream_ended),
            extensions={"http_version": b"HTTP/3"},
        )

    def stall(self) -> None:
        """Take no more datagrams: nothing is read, so nothing is acknowledged."""
        self._transport.pause_reading()  # type: ignore[attr-defined]


@asynccontextmanager
async def h3_connection(base_url: str, ca_file: Path) -> AsyncIterator[H3Transport]:
    """One QUIC connection to ``base_url`` (https://host:UDP-port) trusting ``ca_file``, as
    an httpx transport; closed when the block ends."""
    url = urlsplit(base_url)
    assert url.hostname is not None and url.port is not None
    loop = asyncio.get_running_loop()
    quic = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        verify_mode=ssl.CERT_REQUIRED,
        server_name=url.hostname,
    )
    quic.load_verify_locations(str(ca_file))
    # As aioquic.asyncio.connect does, but bound to loopback rather than every address.
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Http3(QuicConnection(configuration=quic)), local_addr=("127.0.0.1", 0)
    )
    try:
        protocol.connect((url.hostname, url.port))
        await protocol.wait_connected()
        yield H3Transport(protocol, transport)
        protocol.close()
        await protocol.wait_closed()
    finally:
        transport.close()


@asynccontextmanager
async def h3_client(
    base_url: str, ca_file: Path, **client_options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client whose requests are streams of one QUIC connection to ``base_url``."""
    async with (
        h3_connection(base_url, ca_file) as quic,
        httpx.AsyncClient(base_url=base_url, transport=quic, **client_options) as client,
    ):
        yield client
