"""GET /v1/topics/{topic}/stream: Server-Sent Events from a real Hypercorn server."""

from __future__ import annotations

import httpx
import pytest

from service.cursor import Cursor

from ..clients import publish, sse
from ..serving import InProcess


async def test_event_posted_over_http_arrives_over_sse(server: InProcess, topic: str) -> None:
    async with sse(server.base_url, f"/v1/topics/{topic}/stream") as stream:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-store"
        assert stream.response.headers["x-accel-buffering"] == "no"
        [sent] = await publish(server.base_url, topic, {"data": {"n": 1}, "type": "greeting"})
        message = await stream.next_event()
    event = message.json()
    assert message.event == "greeting" and message.id == event["id"]
    assert event["data"] == {"n": 1} and event["topic"] == topic
    assert Cursor.decode(topic, event["id"]).as_dict()[sent["partition"]] == 1


async def test_keyed_stream_sees_only_its_key(server: InProcess, topic: str) -> None:
    async with sse(server.base_url, f"/v1/topics/{topic}/stream?key=alice") as stream:
        await publish(server.base_url, topic, [{"data": 1, "key": "bob"}])
        [sent] = await publish(server.base_url, topic, [{"data": 2, "key": "alice"}])
        message = await stream.next_event()
    assert message.json()["data"] == 2
    assert message.id == sent["id"]


async def test_heartbeat_comments_keep_the_stream_alive(server: InProcess, topic: str) -> None:
    # The shared server sends a heartbeat every 0.5 s of silence.
    async with sse(server.base_url, f"/v1/topics/{topic}/stream") as stream:
        message = await stream.next()
    assert message.comments == ["ping"] and message.data is None


async def test_last_event_id_resumes_after_that_event(server: InProcess, topic: str) -> None:
    async with sse(server.base_url, f"/v1/topics/{topic}/stream") as stream:
        await publish(server.base_url, topic, [{"data": 1, "key": "k"}])
        first = await stream.next_event()
    await publish(server.base_url, topic, [{"data": i, "key": "k"} for i in (2, 3)])
    assert first.id is not None
    headers = {"Last-Event-ID": first.id}
    # since= is only for the first connect: Last-Event-ID wins.
    path = f"/v1/topics/{topic}/stream?since=ignored"
    async with sse(server.base_url, path, headers=headers) as stream:
        replayed = [(await stream.next_event()).json()["data"] for _ in range(2)]
    assert replayed == [2, 3]


async def test_since_resumes_on_first_connect(server: InProcess, topic: str) -> None:
    async with sse(server.base_url, f"/v1/topics/{topic}/stream") as stream:
        await publish(server.base_url, topic, [{"data": 1, "key": "k"}])
        first = await stream.next_event()
    await publish(server.base_url, topic, [{"data": 2, "key": "k"}])
    async with sse(server.base_url, f"/v1/topics/{topic}/stream?since={first.id}") as stream:
        assert (await stream.next_event()).json()["data"] == 2


@pytest.mark.parametrize(
    ("path", "status", "problem"),
    [
        ("/v1/topics/it-x/stream?since=garbage!", 400, "bad-cursor"),
        ("/v1/topics/not-exposed/stream", 404, "unknown-topic"),
        ("/v1/topics/it-x/stream?key=" + "k" * 300, 400, "bad-parameter"),
    ],
)
async def test_bad_stream_requests_are_problem_json(
    server: InProcess, path: str, status: int, problem: str
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get(path)
    assert response.status_code == status
    assert response.json()["type"] == f"urn:herald:problem:{problem}"


async def test_cursor_of_another_topic_is_rejected(server: InProcess, topic: str) -> None:
    foreign = Cursor.after(0, 5).encode("it-another-topic")
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get(
            f"/v1/topics/{topic}/stream", headers={"Last-Event-ID": foreign}
        )
    assert response.status_code == 400
