"""A small HTTP/3 client over aioquic, for tests of Herald's QUIC port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Response:
    """One request's answer as it arrives: its headers, then its body in pieces."""

    events: asyncio.Queue[H3Event] = field(default_factory=asyncio.Queue)
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    ended: bool = False

    async def start(self) -> Response:
        """Wait for the response headers."""
        event = await self.events.get()
        assert isinstance(event, HeadersReceived), event
        fields = {name.decode(): value.decode() for name, value in event.headers}
        self.status = int(fields.pop(":status"))
        self.headers = fields
        self.ended = event.stream_ended
        return self

    async def chunk(self) -> bytes:
        """The next piece of the body (b"" once it ended)."""
        while not self.ended:
            event = await self.events.get()
            if isinstance(event, DataReceived):
                self.ended = event.stream_ended
                if event.data:
                    return event.data
            elif isinstance(event, HeadersReceived):  # trailers
                self.ended = event.stream_ended
        return b""

    async def body(self) -> bytes:
        parts = []
        while part := await self.chunk():
            parts.append(part)
        return b"".join(parts)


class H3Client(QuicConnectionProtocol):
    """One QUIC connection speaking HTTP/3; each request is a stream of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._http = H3Connection(self._quic)
        self._responses: dict[int, Response] = {}
        self.authority = b""

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self._http.handle_event(event):
            if isinstance(h3_event, HeadersReceived | DataReceived):
                response = self._responses.get(h3_event.stream_id)
                if response is not None:
                    response.events.put_nowait(h3_event)

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        """Send a request; the answer's headers have arrived when this returns."""
        stream_id = self._quic.get_next_available_stream_id()
        response = self._responses[stream_id] = Response()
        self._http.send_headers(
            stream_id,
            [
                (b":method", method.encode()),
                (b":scheme", b"https"),
                (b":authority", self.authority),
                (b":path", path.encode()),
                *(
                    (name.lower().encode(), value.encode())
                    for name, value in (headers or {}).items()
                ),
            ],
            end_stream=not body,
        )
        if body:
            self._http.send_data(stream_id, body, end_stream=True)
        self.transmit()
        return await response.start()


@asynccontextmanager
async def h3_connection(port: int, ca_file: Path) -> AsyncIterator[H3Client]:
    """An HTTP/3 connection to 127.0.0.1:``port``, trusting only ``ca_file``."""
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.load_verify_locations(str(ca_file))
    configuration.server_name = "127.0.0.1"
    async with connect(
        "127.0.0.1", port, configuration=configuration, create_protocol=H3Client
    ) as client:
        assert isinstance(client, H3Client)
        client.authority = f"127.0.0.1:{port}".encode()
        yield client
