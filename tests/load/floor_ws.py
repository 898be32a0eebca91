"""The least WebSocket server gen_ws can subscribe to: ``python -m tests.load.floor_ws``.

It answers the upgrade and the ``subscribe`` op the way Herald does, and on ``steady {rate,
duration, pad}`` writes events shaped like Herald's (``{"op":"event",...,"data":{"ts":...}}``,
encoded once, one write per subscriber) to every subscriber: the floor scenario's measure of
what the same subscribers see from a server that does nothing else, on the same machine.
Reports ``ready`` with its ``port``; ``steady`` answers ``published``, as gen_http does, with
the CPU time the writes took.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import time
from typing import Any, cast

from .control import MAX_LIFETIME_S, emit, process_cpu_s, run_generator, serve_commands

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_HANDSHAKE_END = b"\r\n\r\n"
_TEXT = 0x81  # FIN + text
_CLOSE = 0x8


def frame(payload: bytes) -> bytes:
    """A server-to-client text frame (unmasked)."""
    size = len(payload)
    if size < 126:
        return bytes((_TEXT, size)) + payload
    return bytes((_TEXT, 126)) + size.to_bytes(2, "big") + payload


class Peer(asyncio.Protocol):
    """One client: the upgrade, then its masked frames; subscribed on its first message."""

    def __init__(self, subscribed: set[asyncio.Transport]) -> None:
        self._subscribed = subscribed
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports are not asyncio.Transport subclasses, but do all they do.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._subscribed.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buffer += data
        if not self._upgraded:
            end = self._buffer.find(_HANDSHAKE_END)
            if end < 0:
                return
            self._upgrade(bytes(self._buffer[:end]).decode("latin-1"))
            del self._buffer[: end + len(_HANDSHAKE_END)]
        while len(self._buffer) >= 6:
            opcode, length = self._buffer[0] & 0x0F, self._buffer[1] & 0x7F
            head = 2 + {126: 2, 127: 8}.get(length, 0) + 4  # + the client's mask
            if len(self._buffer) < head:
                return
            if length >= 126:
                length = int.from_bytes(self._buffer[2 : head - 4], "big")
            if len(self._buffer) < head + length:
                return
            del self._buffer[: head + length]
            if opcode == _CLOSE:
                self._transport.close()
                return
            if self._transport not in self._subscribed:
                self._transport.write(frame(b'{"op":"subscribed","topic":"floor"}'))
                self._subscribed.add(self._transport)

    def _upgrade(self, request: str) -> None:
        assert self._transport is not None
        headers = {}
        for line in request.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(
            hashlib.sha1(headers["sec-websocket-key"].encode() + _GUID).digest()
        ).decode()
        self._transport.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                f"Sec-WebSocket-Protocol: {headers['sec-websocket-protocol']}\r\n\r\n"
            ).encode()
        )
        self._upgraded = True


async def steady(subscribed: set[asyncio.Transport], command: dict[str, Any]) -> dict[str, Any]:
    """Write ``rate`` events a second for ``duration`` seconds to every subscriber."""
    rate, duration, pad = float(command["rate"]), float(command["duration"]), command["pad"]
    events = max(1, int(rate * duration))
    cpu_before = process_cpu_s()
    start = time.monotonic()
    for seq in range(events):
        await asyncio.sleep(max(0.0, start + seq / rate - time.monotonic()))
        event = {
            "op": "event",
            "topic": "floor",
            "id": f"floor-{seq:032d}",
            "data": {"ts": time.time(), "seq": seq, "pad": "x" * int(pad)},
        }
        data = frame(json.dumps(event, separators=(",", ":")).encode())
        for transport in subscribed:
            transport.write(data)
    # Its own CPU for the writes, as deliveries per server CPU-second are reckoned for Herald
    # (until the last write, not until the last subscriber read it: no more is asked of it).
    return {"event": "published", "accepted": events, "cpu_s": process_cpu_s() - cpu_before}


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.load.floor_ws")
    parser.add_argument("--lifetime", type=float, default=MAX_LIFETIME_S)
    args = parser.parse_args()
    subscribed: set[asyncio.Transport] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Peer(subscribed), "127.0.0.1", 0, backlog=4096)
    emit({"event": "ready", "port": server.sockets[0].getsockname()[1]})

    async def run_steady(command: dict[str, Any]) -> dict[str, Any]:
        return await steady(subscribed, command)

    try:
        await serve_commands({"steady": run_steady}, args.lifetime)
    finally:
        server.close()


if __name__ == "__main__":
    run_generator(main)
