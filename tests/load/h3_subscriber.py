"""An SSE subscriber over HTTP/3 for the load generators: one QUIC connection each (aioquic),
as each browser tab has; the SSE blocks are read as SseSubscriber reads them."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent

from .subscribers import SseSubscriber
from .tally import Tally


class H3SseSubscriber(SseSubscriber):
    """A ``GET /v1/topics/{topic}/stream`` reader over HTTP/3."""

    def __init__(self, tally: Tally, host: str, port: int, path: str, ca_file: str) -> None:
        super().__init__(tally, host, port, path)
        self.configuration = QuicConfiguration(
            is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_REQUIRED
        )
        self.configuration.load_verify_locations(ca_file)
        self.configuration.server_name = host
        # HTTP/3 frames the body: what arrives is the SSE stream itself.
        self._upgraded = True
        self._quic: _Quic | None = None
        self._datagrams: asyncio.BaseTransport | None = None

    async def open(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._datagrams, self._quic = await loop.create_datagram_endpoint(
            lambda: _Quic(self, QuicConnection(configuration=self.configuration)),
            local_addr=("127.0.0.1", 0),
        )
        self._quic.connect((host, port))
        await self._quic.wait_connected()
        self._quic.get(self.path, f"{host}:{port}")

    def fail(self, reason: str) -> None:
        super().fail(reason)
        self.close()

    def close(self) -> None:
        if self._quic is not None:
            self._quic.close()  # sends CONNECTION_CLOSE at once
        if self._datagrams is not None:
            self._datagrams.close()


class _Quic(QuicConnectionProtocol):
    def __init__(self, subscriber: H3SseSubscriber, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscriber = subscriber
        self.http = H3Connection(self._quic)
        self.stream_id = -1

    def get(self, path: str, authority: str) -> None:
        self.stream_id = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            (b"accept", b"text/event-stream"),
        ]
        self.http.send_headers(self.stream_id, headers, end_stream=True)
        self.transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        subscriber = self.subscriber
        if isinstance(event, ConnectionTerminated):
            subscriber.connection_lost(None)
            return
        for http_event in self.http.handle_event(event):
            if isinstance(http_event, HeadersReceived):
                status = dict(http_event.headers).get(b":status", b"")
                if status != b"200":
                    subscriber.fail(f"stream refused: {status.decode()}")
            elif isinstance(http_event, DataReceived):
                if http_event.data:
                    subscriber.body_received(http_event.data, time.time())
                if http_event.stream_ended:
                    subscriber.ended.set()
