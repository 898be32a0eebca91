"""What a Herald process logs as JSON, with the access log on: one line when a WebSocket or an
SSE stream opens and one when it closes, one line per request, each with its request id, and
never a token, a cookie, an Authorization value or a secret."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from ..clients import publish, sse, ws_recv_op, ws_send
from ..processes import HeraldProcess
from ..serving import StartServer
from ..tokens import SECRET, token
from ..waiting import eventually


@pytest.fixture(scope="module")
async def logged(module_server_factory: StartServer) -> AsyncIterator[HeraldProcess]:
    served = await module_server_factory(
        topics="it-.*",
        public_topics="",  # every read needs a token: they ride in the URL, headers, cookies
        jwt_secret=SECRET,
        log_format="json",
        access_log="true",
    )
    assert isinstance(served, HeraldProcess)
    yield served


def _records(server: HeraldProcess) -> list[dict[str, Any]]:
    """Every line of the process's log, each one JSON object."""
    return [json.loads(line) for line in server.log_path.read_text().splitlines()]


async def _line(server: HeraldProcess, logger: str, **match: Any) -> dict[str, Any]:
    """The one line of ``logger`` whose fields include ``match``, once it is written."""

    def found() -> list[dict[str, Any]]:
        return [
            record
            for record in _records(server)
            if record["logger"] == logger and all(record.get(k) == v for k, v in match.items())
        ]

    await eventually(lambda: bool(found()))
    [record] = found()
    return record


async def test_connections_and_requests_leave_json_lines_without_credentials(
    logged: HeraldProcess, topic: str
) -> None:
    reader = token("alice", subscribe=[f"{topic}*"])
    url = f"{logged.ws_url}/v1/ws?topic={topic}&access_token={reader}"
    async with connect(
        url,
        subprotocols=["herald.v1.json"],  # type: ignore[list-item]
        additional_headers={"X-Request-Id": "proc-ws"},
    ) as ws:
        await ws_recv_op(ws, "subscribed")
        await ws_send(ws, {"op": "subscribe", "topic": f"{topic}-b"})
        await ws_recv_op(ws, "subscribed")
        opened = await _line(logged, "herald.connection", request_id="proc-ws", connection="open")
        await publish(logged.base_url, topic, {"data": 1})
        await ws_recv_op(ws, "event")
    ws_closed = await _line(logged, "herald.connection", request_id="proc-ws", connection="close")

    headers = {"X-Request-Id": "proc-sse", "Authorization": f"Bearer {reader}"}
    async with sse(logged.base_url, f"/v1/topics/{topic}/stream", headers=headers) as stream:
        await _line(logged, "herald.connection", request_id="proc-sse", connection="open")
        await publish(logged.base_url, topic, [{"data": 2}, {"data": 3}])
        for _ in range(2):
            await stream.next_event()
    sse_closed = await _line(logged, "herald.connection", request_id="proc-sse", connection="close")
    async with httpx.AsyncClient(base_url=logged.base_url) as client:
        by_cookie = await client.get(
            f"/v1/topics/{topic}/snapshot",
            headers={"X-Request-Id": "proc-cookie", "Cookie": f"herald_token={reader}"},
        )

    assert opened["level"] == "INFO" and opened["message"].startswith("WebSocket opened")
    assert (opened["transport"], opened["client"], opened["topics"]) == ("ws", "127.0.0.1", 1)
    assert ws_closed["transport"] == "ws" and ws_closed["reason"] == "client-left"
    assert (ws_closed["topics"], ws_closed["events"]) == (2, 1)
    assert isinstance(ws_closed["duration_s"], float) and ws_closed["duration_s"] > 0
    assert sse_closed["transport"] == "sse" and sse_closed["reason"] == "client-left"
    assert (sse_closed["topics"], sse_closed["events"]) == (1, 2)

    ws_access = await _line(logged, "herald.access", request_id="proc-ws")
    assert ws_access["path"] == f"/v1/ws?topic={topic}&access_token=***"
    assert ws_access["status"] == 101
    sse_access = await _line(logged, "herald.access", request_id="proc-sse")
    assert (sse_access["method"], sse_access["status"]) == ("GET", 200)
    cookie_access = await _line(logged, "herald.access", request_id="proc-cookie")
    assert cookie_access["status"] == by_cookie.status_code

    log = logged.log_path.read_text()
    for secret in (reader, SECRET, "Bearer", "herald_token="):
        assert secret not in log, f"{secret[:12]}... is in the log"
