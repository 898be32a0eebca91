"""Request ids on every answer, the access log, and the lines of streaming connections."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from service.logs import RequestIds

from ..clients import publish, sse, ws_recv_op, ws_send
from ..serving import InProcess, StartServer
from ..tokens import SECRET, token
from ..waiting import eventually

GENERATED = re.compile(r"[0-9a-f]{16}")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
JSON = "herald.v1.json"


class Lines(logging.Handler):
    """What Herald's own line loggers (herald.access, herald.connection) write, with the id
    of the request each was written for."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RequestIds())
        self.fields: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.fields.append({"logger": record.name, **getattr(record, "fields", {})})

    def of(self, logger: str, **match: Any) -> list[dict[str, Any]]:
        return [
            fields
            for fields in self.fields
            if fields["logger"] == logger and all(fields.get(k) == v for k, v in match.items())
        ]

    async def one(self, logger: str, **match: Any) -> dict[str, Any]:
        """The line of ``logger`` with ``match`` among its fields, once it is written."""
        await eventually(lambda: bool(self.of(logger, **match)))
        [found] = self.of(logger, **match)
        return found


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    herald = logging.getLogger("herald")
    herald.addHandler(handler)
    try:
        yield handler
    finally:
        herald.removeHandler(handler)


async def test_every_kind_of_answer_echoes_the_request_id(server: InProcess, topic: str) -> None:
    given = {"X-Request-Id": "given-1"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=given) as client:
        answers = {
            "publish (ASGI)": await client.post(f"/v1/topics/{topic}/events", json={"data": 1}),
            "history (ASGI)": await client.get(f"/v1/topics/{topic}/events"),
            "snapshot (Quart)": await client.get(f"/v1/topics/{topic}/snapshot"),
            "unknown path (Quart)": await client.get("/nowhere"),
            "wrong method (router)": await client.delete(f"/v1/topics/{topic}/events"),
            "health (Quart)": await client.get("/healthz"),
        }
    assert {name: a.headers.get("x-request-id") for name, a in answers.items()} == {
        name: "given-1" for name in answers
    }
    async with sse(server.base_url, f"/v1/topics/{topic}/stream", headers=given) as stream:
        assert stream.response.headers["x-request-id"] == "given-1"
    async with connect(
        f"{server.ws_url}/v1/ws",
        subprotocols=[JSON],  # type: ignore[list-item]
        additional_headers=given,
    ) as ws:
        assert ws.response.headers["x-request-id"] == "given-1"


async def test_a_request_id_comes_from_the_trace_or_is_made(server: InProcess) -> None:
    traced = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        from_trace = await client.get("/healthz", headers=traced)
        insane = await client.get("/healthz", headers={"X-Request-Id": "a b"})
        made = [await client.get("/healthz") for _ in range(2)]
    assert from_trace.headers["x-request-id"] == TRACE_ID
    assert GENERATED.fullmatch(insane.headers["x-request-id"])
    ids = [answer.headers["x-request-id"] for answer in made]
    assert all(GENERATED.fullmatch(i) for i in ids) and ids[0] != ids[1]


async def test_the_access_log_has_one_line_per_request_and_no_credential(
    server: InProcess, topic: str, lines: Lines
) -> None:
    secret = token("alice", subscribe=["*"])
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        query = await client.get(
            f"/v1/topics/{topic}/events?limit=5&access_token={secret}",
            headers={"X-Request-Id": "access-1"},
        )
        header = await client.get(
            f"/v1/topics/{topic}/snapshot",
            headers={"X-Request-Id": "access-2", "Authorization": f"Bearer {secret}"},
        )
        cookie = await client.post(
            f"/v1/topics/{topic}/events",
            json={"data": 1},
            headers={"X-Request-Id": "access-3", "Cookie": f"herald_token={secret}"},
        )
    by_query = await lines.one("herald.access", request_id="access-1")
    assert by_query["method"] == "GET"
    assert by_query["path"] == f"/v1/topics/{topic}/events?limit=5&access_token=***"
    assert by_query["status"] == query.status_code
    assert by_query["client"] == "127.0.0.1"
    assert isinstance(by_query["duration_s"], float) and by_query["duration_s"] >= 0
    by_header = await lines.one("herald.access", request_id="access-2")
    assert (by_header["method"], by_header["path"]) == ("GET", f"/v1/topics/{topic}/snapshot")
    assert by_header["status"] == header.status_code
    by_cookie = await lines.one("herald.access", request_id="access-3")
    assert (by_cookie["method"], by_cookie["status"]) == ("POST", cookie.status_code)
    # (The conftest checks every line, text and JSON, for the token itself.)


async def test_a_websocket_logs_its_open_and_close_with_its_request_id(
    server: InProcess, topic: str, lines: Lines
) -> None:
    async with connect(
        f"{server.ws_url}/v1/ws",
        subprotocols=[JSON],  # type: ignore[list-item]
        additional_headers={"X-Request-Id": "ws-1"},
    ) as ws:
        opened = await lines.one("herald.connection", request_id="ws-1", connection="open")
        assert (opened["transport"], opened["client"], opened["topics"]) == ("ws", "127.0.0.1", 0)
        for name in (topic, f"{topic}-b"):
            await ws_send(ws, {"op": "subscribe", "topic": name})
            await ws_recv_op(ws, "subscribed")
        await publish(server.base_url, topic, [{"data": 1}, {"data": 2}])
        for _ in range(2):
            await ws_recv_op(ws, "event")
    closed = await lines.one("herald.connection", request_id="ws-1", connection="close")
    assert closed["reason"] == "client-left" and "code" not in closed
    assert (closed["transport"], closed["topics"], closed["events"]) == ("ws", 2, 2)
    assert closed["duration_s"] >= 0
    # The upgrade is an answer too: in the access log when the connection ends.
    access = await lines.one("herald.access", request_id="ws-1")
    assert (access["method"], access["path"], access["status"]) == ("WEBSOCKET", "/v1/ws", 101)


async def test_a_websocket_closed_for_breaking_the_protocol_says_so(
    server: InProcess, lines: Lines
) -> None:
    async with connect(
        f"{server.ws_url}/v1/ws",
        subprotocols=[JSON],  # type: ignore[list-item]
        additional_headers={"X-Request-Id": "ws-2"},
    ) as ws:
        await ws.send("not json")
        with pytest.raises(ConnectionClosed) as closing:
            await ws.recv()
    code = closing.value.rcvd.code if closing.value.rcvd else None
    closed = await lines.one("herald.connection", request_id="ws-2", connection="close")
    assert (closed["reason"], closed["code"]) == ("policy", code)


async def test_an_sse_stream_logs_its_open_and_close_with_its_request_id(
    server: InProcess, topic: str, lines: Lines
) -> None:
    path = f"/v1/topics/{topic}/stream"
    async with sse(server.base_url, path, headers={"X-Request-Id": "sse-1"}) as stream:
        opened = await lines.one("herald.connection", request_id="sse-1", connection="open")
        assert (opened["transport"], opened["topics"]) == ("sse", 1)
        await publish(server.base_url, topic, [{"data": 1}, {"data": 2}, {"data": 3}])
        for _ in range(3):
            await stream.next_event()
    closed = await lines.one("herald.connection", request_id="sse-1", connection="close")
    assert closed["reason"] == "client-left"
    assert (closed["transport"], closed["topics"], closed["events"]) == ("sse", 1, 3)
    access = await lines.one("herald.access", request_id="sse-1")
    assert (access["path"], access["status"]) == (path, 200)


async def test_without_the_access_log_requests_still_get_ids(
    function_server_factory: StartServer, topic: str, lines: Lines
) -> None:
    quiet = await function_server_factory(access_log="false")
    async with httpx.AsyncClient(base_url=quiet.base_url) as client:
        answer = await client.get(f"/v1/topics/{topic}/snapshot", headers={"X-Request-Id": "q"})
    assert answer.headers["x-request-id"] == "q"
    async with sse(quiet.base_url, f"/v1/topics/{topic}/stream", headers={"X-Request-Id": "q2"}):
        await lines.one("herald.connection", request_id="q2", connection="open")
    await lines.one("herald.connection", request_id="q2", connection="close")
    assert not lines.of("herald.access")


async def test_a_page_of_another_allowed_origin_may_send_and_read_the_request_id(
    function_server_factory: StartServer, topic: str
) -> None:
    app = "https://app.example"
    served = await function_server_factory(allowed_origins=app)
    async with httpx.AsyncClient(base_url=served.base_url) as client:
        preflight = await client.options(
            f"/v1/topics/{topic}/events",
            headers={
                "Origin": app,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-request-id",
            },
        )
        answer = await client.get(f"/v1/topics/{topic}/snapshot", headers={"Origin": app})
    assert "X-Request-Id" in preflight.headers["access-control-allow-headers"]
    assert "X-Request-Id" in answer.headers["access-control-expose-headers"]


async def test_streams_of_an_expired_token_close_as_token_expired(
    function_server_factory: StartServer, topic: str, lines: Lines
) -> None:
    served = await function_server_factory(
        topics="it-.*", public_topics="", jwt_secret=SECRET, jwt_leeway_s="0"
    )
    brief = token("alice", subscribe=["it-*"], ttl=2)  # (exp is whole seconds: 1 to 2 s away)
    auth = {"Authorization": f"Bearer {brief}"}
    async with (
        sse(served.base_url, f"/v1/topics/{topic}/stream", headers={**auth, "X-Request-Id": "e1"}),
        connect(
            f"{served.ws_url}/v1/ws?topic={topic}",
            subprotocols=[JSON],  # type: ignore[list-item]
            additional_headers={**auth, "X-Request-Id": "e2"},
        ),
    ):
        by_sse = await lines.one("herald.connection", request_id="e1", connection="close")
        by_ws = await lines.one("herald.connection", request_id="e2", connection="close")
    assert by_sse["reason"] == by_ws["reason"] == "token-expired"
    assert by_ws["code"] == 4401


async def test_streams_told_to_go_by_a_stopping_instance_close_as_shutdown(
    function_server_factory: StartServer, topic: str, lines: Lines
) -> None:
    served = await function_server_factory()
    assert isinstance(served, InProcess)
    async with (
        sse(served.base_url, f"/v1/topics/{topic}/stream", headers={"X-Request-Id": "s1"}),
        connect(
            f"{served.ws_url}/v1/ws?topic={topic}",
            subprotocols=[JSON],  # type: ignore[list-item]
            additional_headers={"X-Request-Id": "s2"},
        ) as ws,
    ):
        await ws_recv_op(ws, "subscribed")
        await lines.one("herald.connection", request_id="s1", connection="open")
        served.herald.lifecycle.begin_shutdown()
        by_sse = await lines.one("herald.connection", request_id="s1", connection="close")
        by_ws = await lines.one("herald.connection", request_id="s2", connection="close")
    assert by_sse["reason"] == by_ws["reason"] == "shutdown"
    assert by_ws["code"] == 4503
