"""Independent clients for the tests: a Server-Sent Events reader and WebSocket helpers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgpack
from websockets.asyncio.client import ClientConnection


@dataclass
class SseMessage:
    """One dispatched SSE block: fields as the EventSource algorithm collects them."""

    event: str | None = None
    id: str | None = None
    data: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        assert self.data is not None
        return json.loads(self.data)


class SseStream:
    """Reads an open text/event-stream response block by block."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> SseMessage:
        message = SseMessage()
        seen = False
        async for line in self._lines:
            if line == "":
                if seen:
                    return message
                continue
            seen = True
            if line.startswith(":"):
                message.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                message.data = value if message.data is None else f"{message.data}\n{value}"
            elif name == "retry":
                message.retry = int(value)
            elif name in ("event", "id"):
                setattr(message, name, value)
        raise EOFError("stream ended")

    async def next_event(self) -> SseMessage:
        """The next block that carries data (skips heartbeats and retry-only blocks)."""
        while True:
            message = await self.next()
            if message.data is not None:
                return message


@asynccontextmanager
async def sse(
    base_url: str, path: str, headers: dict[str, str] | None = None, **client_options: Any
) -> AsyncIterator[SseStream]:
    """Open an SSE stream and read its first block (retry:), so the subscription is live.

    ``client_options`` go to httpx.AsyncClient (``verify``, ``http2`` through a proxy).
    """
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30, **client_options) as client,
        sse_on(client, path, headers) as stream,
    ):
        yield stream


@asynccontextmanager
async def sse_on(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SseStream]:
    """``sse`` on a client of the caller's (HTTP/2, HTTP/3: tests/h3_client.py)."""
    async with client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        stream = SseStream(response)
        first = await stream.next()
        assert first.retry is not None
        yield stream


async def ws_send(ws: ClientConnection, message: dict[str, Any]) -> None:
    if ws.subprotocol == "herald.v1.msgpack":
        await ws.send(msgpack.packb(message, use_bin_type=True))
    else:
        await ws.send(json.dumps(message))


async def ws_recv(ws: ClientConnection) -> dict[str, Any]:
    frame = await ws.recv()
    if isinstance(frame, bytes):
        message: dict[str, Any] = msgpack.unpackb(frame, raw=False)
    else:
        message = json.loads(frame)
    return message


async def ws_recv_op(ws: ClientConnection, op: str) -> dict[str, Any]:
    """The next message with ``op``; fails on an unexpected ``error``."""
    while True:
        message = await ws_recv(ws)
        if message["op"] == op:
            return message
        assert message["op"] != "error", message


async def publish(base_url: str, topic: str, body: Any, **kwargs: Any) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post(f"/v1/topics/{topic}/events", json=body, **kwargs)
    assert response.status_code == 201, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events
