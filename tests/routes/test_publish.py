"""POST /v1/topics/{topic}/events against the real broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import msgpack
import pytest

from service.cursor import Cursor

from ..clients import publish
from ..raw_http import answer_head
from ..serving import InProcess, StartServer


@pytest.fixture(scope="module")
def direct_writes() -> str:
    """Nothing here depends on how frames reach a socket: the fast path only (see conftest)."""
    return "auto"


PROBLEM = "application/problem+json"
JSON = "application/json"


async def post(server: InProcess, topic: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return await client.post(f"/v1/topics/{topic}/events", **kwargs)  # type: ignore[arg-type]


async def test_publish_answers_201_with_kafka_positions(server: InProcess, topic: str) -> None:
    events = await publish(server.base_url, topic, {"data": {"n": 1}, "key": "user-1"})
    [event] = events
    assert event["topic"] == topic and event["key"] == "user-1"
    assert isinstance(event["partition"], int) and event["offset"] == "0"
    # The id is the cursor just after the record: one partition, offset + 1.
    assert Cursor.decode(topic, event["id"]) == Cursor.after(event["partition"], 0)


async def test_publish_batch_keeps_order_within_a_key(server: InProcess, topic: str) -> None:
    events = await publish(
        server.base_url, topic, [{"data": i, "key": "k", "type": "tick"} for i in range(5)]
    )
    assert [int(e["offset"]) for e in events] == [0, 1, 2, 3, 4]
    assert len({e["partition"] for e in events}) == 1


async def test_publish_accepts_msgpack(server: InProcess, topic: str) -> None:
    body = msgpack.packb({"data": {"blob": b"\x00\x01"}, "type": "bin"}, use_bin_type=True)
    response = await post(
        server, topic, content=body, headers={"Content-Type": "application/msgpack"}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("content", "content_type", "status", "problem"),
    [
        (b'{"data": 1', "application/json", 400, "malformed"),
        (b"\xc1", "application/msgpack", 400, "malformed"),
        (b"[" * 30_000 + b"]" * 30_000, "application/json", 400, "malformed"),
        (b'{"data": 1}', "text/plain", 415, "unsupported-media-type"),
        (b'{"value": 1}', "application/json", 422, "invalid"),
        (b'{"data": 1, "type": "a\\nb"}', "application/json", 422, "invalid"),
        (b"[]", "application/json", 422, "invalid"),
    ],
)
async def test_publish_rejects_bad_input_with_problem_json(
    server: InProcess,
    topic: str,
    content: bytes,
    content_type: str,
    status: int,
    problem: str,
) -> None:
    response = await post(server, topic, content=content, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"urn:herald:problem:{problem}" and body["status"] == status


async def test_schema_violation_names_the_failing_path(server: InProcess, topic: str) -> None:
    response = await post(server, topic, json=[{"data": 1}, {"data": 2, "key": ""}])
    assert response.status_code == 422
    assert {error["path"] for error in response.json()["errors"]} == {"/1/key"}


async def test_too_many_events_in_a_batch_is_422(server: InProcess, topic: str) -> None:
    response = await post(server, topic, json=[{"data": i} for i in range(101)])
    assert response.status_code == 422


async def test_body_over_the_limit_is_413(server: InProcess, topic: str) -> None:
    # The shared server allows 64 KiB.
    response = await post(server, topic, json={"data": "x" * 70_000})
    assert response.status_code == 413
    assert response.json()["type"] == "urn:herald:problem:too-large"


async def test_a_chunked_body_over_the_limit_is_413(server: InProcess, topic: str) -> None:
    # No Content-Length to refuse it by: the limit holds as the body comes in.
    async def body() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 4096

    response = await post(server, topic, content=body(), headers={"Content-Type": JSON})
    assert response.status_code == 413
    assert response.json()["type"] == "urn:herald:problem:too-large"


async def test_an_answer_says_it_is_not_to_be_kept_and_not_sniffed(
    server: InProcess, topic: str
) -> None:
    for content in (b'{"data": 1}', b"{"):
        response = await post(server, topic, content=content, headers={"Content-Type": JSON})
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert int(response.headers["content-length"]) == len(response.content)


async def test_a_client_that_leaves_mid_body_is_let_go_quietly(
    server: InProcess, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"POST /v1/topics/{topic}/events HTTP/1.1\r\nHost: x\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"data":'.encode()
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    # Nothing of it was published (the next event is the topic's first), and nothing failed.
    [event] = await publish(server.base_url, topic, {"data": 2})
    assert event["offset"] == "0"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_body_that_trickles_in_is_cut_off_with_408(
    function_server_factory: StartServer, topic: str
) -> None:
    strict = await function_server_factory(body_timeout_s="0.5")
    head = await answer_head(
        strict.port,
        f"POST /v1/topics/{topic}/events HTTP/1.1\r\nHost: x\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"data":'.encode(),
        30,
    )
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"content-type: application/problem+json" in head.lower()


@pytest.mark.parametrize("name", ["__consumer_offsets", "not-exposed", "it-" + "x" * 250])
async def test_unexposed_topic_is_404(server: InProcess, name: str) -> None:
    response = await post(server, name, json={"data": 1})
    assert response.status_code == 404
    assert response.json()["type"] == "urn:herald:problem:unknown-topic"


async def test_unknown_topic_is_404_when_creation_is_off(
    function_server_factory: StartServer, topic: str
) -> None:
    strict = await function_server_factory(topics="it-.*", auto_create_topics="false")
    response = await post(strict, topic, json={"data": 1})
    assert response.status_code == 404
    assert response.json()["type"] == "urn:herald:problem:unknown-topic"


async def test_unknown_route_and_method_are_problem_json(server: InProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        missing = await client.get("/v1/nothing")
        wrong_method = await client.put("/v1/topics/it-x/events")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert wrong_method.status_code == 405 and wrong_method.headers["content-type"] == PROBLEM


async def test_a_refused_body_left_unread_is_answered_with_connection_close(
    server: InProcess, topic: str
) -> None:
    # Far larger than the server reads off (twice its 64 KiB limit): the server will close,
    # and says so, so that a keep-alive client does not send its next request on this one.
    head = await answer_head(
        server.port,
        f"POST /v1/topics/{topic}/events HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n".encode(),
        10,
    )
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
