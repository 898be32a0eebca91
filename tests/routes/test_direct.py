"""service/transports/direct.py against a real Hypercorn: the fan-out's writes reach clients.

Every other test would still pass if ``ws_socket``/``sse_socket`` found no socket (events then
take the queue); these check that under Hypercorn over HTTP/1.1 they find one, and that what
``SocketWrite`` writes between the server's own frames and chunks arrives intact.
"""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from service.cursor import Cursor
from service.events import EventIn, EventRun, Scope
from service.metrics import Tally
from service.records import event_from_record, to_record
from service.transports import fast_path
from service.transports.direct import TESTED, DirectWrites, SocketWrite, probe
from service.wire import Format, run_sse_chunks, run_ws_frames

from ..asgi_server import serve_asgi

TOPIC = "orders"


def run_of(*numbers: int) -> EventRun:
    events = []
    for n in numbers:
        key, value, headers = to_record(EventIn(data={"n": n}))
        cursor = Cursor.of({0: n + 1})
        events.append(event_from_record(TOPIC, 0, n, 1714564800123, key, value, headers, cursor))
    return EventRun(events, Scope.TOPIC)


async def test_a_websocket_takes_a_run_between_the_servers_own_frames() -> None:
    tally = Tally()
    found: list[SocketWrite | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "before"})
        direct = DirectWrites().ws_socket(send, Format.JSON, run_ws_frames, tally)
        found.append(direct)
        assert direct is not None and direct.deliver(run_of(1, 2))
        await send({"type": "websocket.send", "text": "after"})
        await receive()  # websocket.disconnect

    async with serve_asgi(app) as url, connect(url.replace("http", "ws", 1) + "/") as ws:
        messages = [await ws.recv() for _ in range(4)]
    assert found and found[0] is not None
    assert messages[0] == "before" and messages[3] == "after"
    assert [json.loads(m)["data"]["n"] for m in messages[1:3]] == [1, 2]
    assert tally.count == 2


async def test_a_streamed_response_takes_a_run_as_chunks_between_its_own() -> None:
    tally = Tally()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()  # http.request
        # Before the headers are out there is no chunked body to write into.
        assert DirectWrites().sse_socket(send, run_sse_chunks, tally) is None
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b": hello\r\n\r\n", "more_body": True})
        direct = DirectWrites().sse_socket(send, run_sse_chunks, tally)
        assert direct is not None and direct.deliver(run_of(1, 2))
        await send({"type": "http.response.body", "body": b": bye\r\n\r\n", "more_body": False})

    async with serve_asgi(app) as url, httpx.AsyncClient() as client:
        response = await client.get(f"{url}/stream")
    blocks = response.text.split("\r\n\r\n")
    assert blocks[0] == ": hello" and blocks[3] == ": bye"
    data = [
        line for block in blocks[1:3] for line in block.split("\r\n") if line.startswith("data")
    ]
    assert [json.loads(line[len("data: ") :])["data"]["n"] for line in data] == [1, 2]
    assert tally.count == 2


def test_the_installed_hypercorn_is_one_the_fast_path_was_tested_with() -> None:
    # The suite runs the fast path (tests/routes, "direct"): it must not be off unseen.
    assert isinstance(probe(), DirectWrites)
    version = importlib.metadata.version("hypercorn")
    assert ".".join(version.split(".")[:2]) in TESTED


def test_off_never_loads_the_fast_path() -> None:
    assert fast_path.load("off") is None
    assert isinstance(fast_path.load("auto"), DirectWrites)


def test_an_untested_hypercorn_gets_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "99.0.0")
    assert probe() is None
