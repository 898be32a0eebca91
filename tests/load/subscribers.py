"""Lean asyncio subscribers for the load generators: WebSocket (JSON, msgpack) and SSE.

The test suite's clients (httpx, websockets) cost tens of microseconds per message; a
generator that must read 100 000 messages a second on a machine it shares with the server
cannot afford that. These parse just enough of RFC 6455, chunked HTTP/1.1 and the SSE format,
and find the publisher's send time (``"ts"`` in the event data) without decoding the whole
event. Control messages (subscribed, lagging, reset, errors) are decoded in full.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import ssl
import struct
import time
from typing import Any, cast

import msgpack

from .tally import Tally

_TS_JSON = re.compile(rb'"ts":(-?[0-9.eE+-]+)')
_TS_MSGPACK = b"\xa2ts\xcb"  # "ts" followed by a float64
_EVENT_JSON = b'{"op":"event"'
_EVENT_MSGPACK = b"\xa2op\xa5event"
_BATCH_JSON = b'{"op":"batch"'
_BATCH_MSGPACK = b"\x82\xa2op\xa5batch"
_SSE_MESSAGE = b"event: message"
HANDSHAKE_END = b"\r\n\r\n"


def send_time_json(payload: bytes) -> float | None:
    match = _TS_JSON.search(payload)
    return float(match.group(1)) if match else None


def send_time_msgpack(payload: bytes) -> float | None:
    at = payload.find(_TS_MSGPACK)
    if at < 0:
        return None
    value: float = struct.unpack_from(">d", payload, at + 4)[0]
    return value


class Subscriber(asyncio.Protocol):
    """Base of the streaming subscribers: handshake state, readiness and closing."""

    # HTTPS (trusting the server's test CA) when set.
    tls: ssl.SSLContext | None = None

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        # Set once the server confirmed the subscription (WS subscribed, SSE retry block).
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._buffer = bytearray()
        self._upgraded = False
        self.confirmed = False

    async def open(self, host: str, port: int) -> None:
        """Connect (the subscription is confirmed later: ``ready``)."""
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, host, port, ssl=self.tls)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request())

    def request(self) -> bytes:
        raise NotImplementedError

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost()
        if self.confirmed:
            self.tally.closed()
        elif not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before subscribing: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def on_lost(self) -> None:
        """Hook for subclasses: the connection is gone."""

    def confirm(self) -> None:
        if not self.ready.done():
            self.confirmed = True
            self.tally.opened()
            self.ready.set_result(None)

    def fail(self, reason: str) -> None:
        self.tally.error(reason)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._upgraded:
            self.body_received(data, time.time())
            return
        self._buffer += data
        end = self._buffer.find(HANDSHAKE_END)
        if end < 0:
            if len(self._buffer) > 65536:
                self.fail("response head too large")
            return
        head = bytes(self._buffer[:end]).decode("latin-1")
        rest = bytes(self._buffer[end + 4 :])
        self._buffer.clear()
        status_line, *header_lines = head.split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if not self.accept(status_line, headers):
            return
        self._upgraded = True
        if rest:
            self.body_received(rest, time.time())

    def accept(self, status_line: str, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def body_received(self, data: bytes, now: float) -> None:
        raise NotImplementedError


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 section 5.3)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    if not size:
        return header + mask
    key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")
    return header + mask + masked


class WsSubscriber(Subscriber):
    """A WebSocket client on ``/v1/ws`` that sends its ``subscribe`` ops once upgraded; it is
    confirmed once each of them is."""

    def __init__(
        self,
        tally: Tally,
        host: str,
        port: int,
        subprotocol: str,
        *subscribe: dict[str, Any],
    ) -> None:
        super().__init__(tally)
        self.host = host
        self.port = port
        self.subprotocol = subprotocol
        self.binary = subprotocol.endswith("msgpack")
        self.subscribe = subscribe
        self._unconfirmed = len(subscribe)
        self._key = base64.b64encode(os.urandom(16)).decode()
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self.close_code: int | None = None

    def request(self) -> bytes:
        return (
            f"GET /v1/ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {self.subprotocol}\r\n\r\n"
        ).encode()

    def accept(self, status_line: str, headers: dict[str, str]) -> bool:
        if " 101 " not in f"{status_line} ":
            self.fail(f"upgrade refused: {status_line}")
            return False
        if headers.get("sec-websocket-protocol") != self.subprotocol:
            self.fail(f"subprotocol not accepted: {headers.get('sec-websocket-protocol')}")
            return False
        for op in self.subscribe:
            self.send(op)
        return True

    def send(self, message: dict[str, Any]) -> None:
        assert self.transport is not None
        if self.binary:
            self.transport.write(client_frame(0x2, msgpack.packb(message, use_bin_type=True)))
        else:
            self.transport.write(client_frame(0x1, json.dumps(message).encode()))

    def body_received(self, data: bytes, now: float) -> None:
        buffer = self._buffer
        buffer += data
        size = len(buffer)
        position = 0
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if size - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                head = 4
            elif length == 127:
                if size - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                head = 10
            if second & 0x80:
                self.fail("server sent a masked frame")
                return
            end = position + head + length
            if end > size:
                break
            payload = bytes(buffer[position + head : end])
            position = end
            self._frame(first & 0x80, first & 0x0F, payload, now)
        del buffer[:position]

    def _frame(self, fin: int, opcode: int, payload: bytes, now: float) -> None:
        if opcode == 0x0 or not fin:
            # Fragmented message: collect until the final frame.
            if opcode:
                self._fragment_opcode = opcode
            self._fragments.append(payload)
            if not fin:
                return
            opcode, payload = self._fragment_opcode, b"".join(self._fragments)
            self._fragments.clear()
        if opcode in (0x1, 0x2):
            self._message(payload, now)
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            name = f"close-{self.close_code}"
            if not self.tally.controls[name] and len(payload) > 2:
                self.tally.errors.append(f"{name}: {payload[2:].decode(errors='replace')}")
            self.tally.control(name)
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(client_frame(0x8, payload[:2]))
                self.transport.close()
        elif opcode == 0x9:
            assert self.transport is not None
            self.transport.write(client_frame(0xA, payload))

    def _message(self, payload: bytes, now: float) -> None:
        if payload.startswith(_BATCH_JSON) or payload.startswith(_BATCH_MSGPACK):
            # herald.v1.batch.*: each element is a message that would have been a frame.
            batch = msgpack.unpackb(payload, raw=False) if self.binary else json.loads(payload)
            for message in batch["messages"]:
                if message.get("op") == "event":
                    sent = message["data"].get("ts") if isinstance(message["data"], dict) else None
                    self.tally.event(sent, now)
                else:
                    self._control(message)
            return
        if self.binary:
            if _EVENT_MSGPACK in payload[:16]:
                sent = send_time_msgpack(payload)
                self.tally.event(sent, now)
                self.on_event(payload)
                return
            message = msgpack.unpackb(payload, raw=False)
        else:
            if payload.startswith(_EVENT_JSON):
                sent = send_time_json(payload)
                self.tally.event(sent, now)
                self.on_event(payload)
                return
            message = json.loads(payload)
        self._control(message)

    def _control(self, message: Any) -> None:
        op = message.get("op") if isinstance(message, dict) else None
        if op == "subscribed":
            self.tally.control("subscribed")
            self._unconfirmed -= 1
            if self._unconfirmed <= 0:
                self.confirm()
        elif op == "error":
            self.fail(f"error op: {message}")
        else:
            self.tally.control(str(op))

    def on_event(self, payload: bytes) -> None:
        """Hook for subclasses that need more than the count (the default does nothing)."""


class SseSubscriber(Subscriber):
    """A ``GET /v1/topics/{topic}/stream`` reader: HTTP/1.1, chunked body, SSE blocks."""

    def __init__(
        self,
        tally: Tally,
        host: str,
        port: int,
        path: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(tally)
        self.host = host
        self.port = port
        self.path = path
        self.headers = headers or {}
        self._chunked = False
        self._chunk_left = 0
        self._need_crlf = False
        self._raw = bytearray()
        self._separator = b"\r\n\r\n"
        # Set when the response body ended (the server closed the stream) or the socket did.
        self.ended = asyncio.Event()
        self.last_id: str | None = None
        self.goodbye: str | None = None

    def on_lost(self) -> None:
        self.ended.set()

    def request(self) -> bytes:
        extra = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Accept: text/event-stream\r\n{extra}\r\n"
        ).encode()

    def accept(self, status_line: str, headers: dict[str, str]) -> bool:
        if " 200 " not in f"{status_line} ":
            self.fail(f"stream refused: {status_line}")
            return False
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        return True

    def body_received(self, data: bytes, now: float) -> None:
        if not self._chunked:
            self._sse(data, now)
            return
        raw = self._raw
        raw += data
        pieces: list[bytes] = []
        position = 0
        size = len(raw)
        while position < size:
            if self._chunk_left:
                take = min(self._chunk_left, size - position)
                pieces.append(bytes(raw[position : position + take]))
                position += take
                self._chunk_left -= take
                self._need_crlf = not self._chunk_left
                continue
            if self._need_crlf:
                if size - position < 2:
                    break
                position += 2
                self._need_crlf = False
                continue
            line_end = raw.find(b"\r\n", position)
            if line_end < 0:
                break
            chunk_size = int(bytes(raw[position:line_end]).split(b";")[0], 16)
            position = line_end + 2
            if chunk_size == 0:
                self.ended.set()
                position = size
                break
            self._chunk_left = chunk_size
        del raw[:position]
        if pieces:
            self._sse(b"".join(pieces), now)

    def _sse(self, data: bytes, now: float) -> None:
        buffer = self._buffer
        buffer += data
        if not self.ready.done() and self._separator not in buffer and b"\n\n" in buffer:
            self._separator = b"\n\n"  # a server that ends lines with LF only
        separator = self._separator
        step = len(separator)
        position = 0
        while True:
            end = buffer.find(separator, position)
            if end < 0:
                break
            block = bytes(buffer[position:end])
            position = end + step
            # The load publishers send the default type; reset, lagging and shutdown are
            # the stream's own events and are decoded in full.
            if _SSE_MESSAGE in block:
                self.tally.event(send_time_json(block), now)
                self.on_event(block)
            else:
                self._control(block)
        del buffer[:position]

    def _control(self, block: bytes) -> None:
        fields: dict[str, str] = {}
        for line in block.decode("utf-8", "replace").splitlines():
            if line.startswith(":"):
                fields.setdefault("comment", line[1:].strip())
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
        if "retry" in fields:
            self.tally.control("retry")
            self.confirm()
        if "event" in fields:
            self.tally.control(fields["event"])
            if fields["event"] in ("lagging", "shutdown"):
                self.goodbye = fields["event"]
            if "id" in fields:
                self.last_id = fields["id"]
        elif "comment" in fields:
            self.tally.control("heartbeat")

    def on_event(self, block: bytes) -> None:
        """Hook for subclasses that need more than the count (the default does nothing)."""
