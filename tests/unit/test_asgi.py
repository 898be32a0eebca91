"""service/transports/asgi.py: Quart's connections with the handler in the server's task."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
from quart import Quart, Response, request, websocket

from service.transports.asgi import Disconnected, HTTPConnection, WebsocketConnection


class Server:
    """The server's side of one connection: what the app receives, and what it sent."""

    def __init__(self) -> None:
        self.inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.body_chunk = asyncio.Event()

    async def receive(self) -> Any:
        return await self.inbound.get()

    async def send(self, message: Any) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            self.body_chunk.set()


def scope(kind: str, path: str, method: str = "GET") -> Any:
    return {
        "type": kind,
        "asgi": {"spec_version": "2.3", "version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http" if kind == "http" else "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }


@pytest.fixture
def app() -> Quart:
    return Quart(__name__)


async def test_a_websocket_reads_the_servers_messages_until_it_disconnects(app: Quart) -> None:
    received: list[Any] = []

    @app.websocket("/ws")
    async def echo() -> None:
        await websocket.accept()
        try:
            while True:
                received.append(await websocket.receive())
        except Disconnected:
            received.append("gone")
        with pytest.raises(Disconnected):
            await websocket.receive()  # and so on: the disconnect is remembered

    server = Server()
    for event in (
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.receive", "bytes": b"\x01"},
        {"type": "websocket.receive", "bytes": b"", "text": None},
        {"type": "websocket.disconnect", "code": 1000},
    ):
        server.inbound.put_nowait(event)
    await WebsocketConnection(app, scope("websocket", "/ws"))(server.receive, server.send)
    assert received == ["hello", b"\x01", None, "gone"]
    assert [message["type"] for message in server.sent] == ["websocket.accept", "websocket.close"]


async def test_a_request_body_reaches_the_handler(app: Quart) -> None:
    @app.post("/echo")
    async def echo() -> bytes:
        body: bytes = await request.body
        return body

    server = Server()
    server.inbound.put_nowait({"type": "http.request", "body": b"ab", "more_body": True})
    server.inbound.put_nowait({"type": "http.request", "body": b"cd", "more_body": False})
    await HTTPConnection(app, scope("http", "/echo", "POST"))(server.receive, server.send)
    assert server.sent[0]["status"] == 200
    assert b"".join(message.get("body", b"") for message in server.sent[1:]) == b"abcd"


async def test_a_stream_lets_its_request_go_and_ends_when_the_client_leaves(app: Quart) -> None:
    requests: list[weakref.ref[object]] = []
    ended = asyncio.Event()

    @app.get("/stream")
    async def stream() -> Response:
        requests.append(weakref.ref(request._get_current_object()))  # type: ignore[attr-defined]

        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"tick"
                    await asyncio.sleep(3600)
            finally:
                ended.set()

        response = Response(body())
        response.timeout = None
        return response

    server = Server()
    server.inbound.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    connection = HTTPConnection(app, scope("http", "/stream"))
    serving = asyncio.create_task(connection(server.receive, server.send))
    await server.body_chunk.wait()
    assert requests[0]() is None  # nothing holds the request while the response streams
    server.inbound.put_nowait({"type": "http.disconnect"})
    await serving  # ends by itself, not cancelled
    assert ended.is_set()


async def test_a_cancelled_server_task_stays_cancelled(app: Quart) -> None:
    @app.get("/slow")
    async def slow() -> str:
        await asyncio.sleep(3600)
        return "never"

    server = Server()
    server.inbound.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    serving = asyncio.create_task(
        HTTPConnection(app, scope("http", "/slow"))(server.receive, server.send)
    )
    await asyncio.sleep(0.01)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
