"""GET /v1/topics/{topic}/snapshot: latest events, cursor, ETag and cache headers."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.cursor import Cursor

from ..clients import publish, sse
from ..serving import InProcess


@pytest.fixture(scope="module")
def direct_writes() -> str:
    """Nothing here depends on how frames reach a socket: the fast path only (see conftest)."""
    return "auto"


async def publish_and_await(server: InProcess, topic: str, body: object) -> None:
    """Publish and wait until this instance has consumed it (seen on its own stream)."""
    async with sse(server.base_url, f"/v1/topics/{topic}/stream") as stream:
        sent = await publish(server.base_url, topic, body)
        for _ in sent:
            await stream.next_event()


async def test_snapshot_holds_the_latest_events_and_the_cursor(
    server: InProcess, topic: str
) -> None:
    await publish_and_await(server, topic, [{"data": i, "key": "k"} for i in range(3)])
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get(f"/v1/topics/{topic}/snapshot", params={"limit": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["topic"] == topic and body["key"] is None
    assert [event["data"] for event in body["events"]] == [1, 2]
    assert body["cursor"] == body["events"][-1]["id"]
    assert response.headers["etag"] == f'"{body["cursor"]}"'
    assert response.headers["cache-control"].startswith("public, max-age=")
    assert f"since={body['cursor']}" in response.headers["link"]
    assert response.headers["link"].endswith('rel="stream"')
    # Named for purging: by topic, and as a live answer (changes with every event).
    assert response.headers["surrogate-key"] == f"herald/{topic} herald/{topic}/live"


async def test_matching_if_none_match_gives_304(server: InProcess, topic: str) -> None:
    await publish_and_await(server, topic, {"data": 1})
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        first = await client.get(f"/v1/topics/{topic}/snapshot")
        etag = first.headers["etag"]
        again = await client.get(f"/v1/topics/{topic}/snapshot", headers={"If-None-Match": etag})
        stale = await client.get(
            f"/v1/topics/{topic}/snapshot", headers={"If-None-Match": '"other"'}
        )
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert stale.status_code == 200


async def test_new_event_changes_the_etag(server: InProcess, topic: str) -> None:
    await publish_and_await(server, topic, {"data": 1})
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        before = (await client.get(f"/v1/topics/{topic}/snapshot")).headers["etag"]
        await publish_and_await(server, topic, {"data": 2})
        after = await client.get(f"/v1/topics/{topic}/snapshot", headers={"If-None-Match": before})
    assert after.status_code == 200 and after.headers["etag"] != before


async def test_keyed_snapshot_holds_only_that_key(server: InProcess, topic: str) -> None:
    await publish_and_await(
        server, topic, [{"data": 1, "key": "a"}, {"data": 2, "key": "b"}, {"data": 3, "key": "a"}]
    )
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        body = (await client.get(f"/v1/topics/{topic}/snapshot", params={"key": "a"})).json()
    assert [event["data"] for event in body["events"]] == [1, 3]
    assert len(Cursor.decode(topic, body["cursor"]).offsets) == 1


async def test_snapshot_cursor_streams_exactly_the_later_events(
    server: InProcess, topic: str
) -> None:
    await publish_and_await(server, topic, [{"data": 1}, {"data": 2}])
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        snapshot = (await client.get(f"/v1/topics/{topic}/snapshot")).json()
    await publish(server.base_url, topic, {"data": 3})
    path = f"/v1/topics/{topic}/stream?since={snapshot['cursor']}"
    async with sse(server.base_url, path) as stream:
        assert (await stream.next_event()).json()["data"] == 3


async def test_snapshot_of_a_topic_not_yet_created_is_empty(server: InProcess, topic: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get(f"/v1/topics/{topic}/snapshot")
    assert response.status_code == 200 and response.json()["events"] == []


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=ten"])
async def test_bad_limit_is_400(server: InProcess, query: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get(f"/v1/topics/it-x/snapshot?{query}")
    assert response.status_code == 400
    assert response.json()["type"] == "urn:herald:problem:bad-parameter"


async def test_unexposed_topic_snapshot_is_404(server: InProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/v1/topics/__consumer_offsets/snapshot")
    assert response.status_code == 404


async def test_snapshot_then_stream_misses_nothing_while_events_keep_arriving(
    server: InProcess, topic: str
) -> None:
    total = 300
    snapshot_taken = asyncio.Event()

    async def keep_publishing() -> None:
        for start in range(0, total, 10):
            if start == total // 2:
                # The second half races the client's switch from snapshot to stream.
                await snapshot_taken.wait()
            await publish(
                server.base_url, topic, [{"data": n, "key": "k"} for n in range(start, start + 10)]
            )

    async with sse(server.base_url, f"/v1/topics/{topic}/stream?key=k") as first:
        publishing = asyncio.create_task(keep_publishing())
        for _ in range(total // 2):
            await first.next_event()  # the first half is consumed by this instance
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        params = {"key": "k", "limit": 1000}
        snapshot = (await client.get(f"/v1/topics/{topic}/snapshot", params=params)).json()
    snapshot_taken.set()
    seen = [event["data"] for event in snapshot["events"]]
    path = f"/v1/topics/{topic}/stream?key=k&since={snapshot['cursor']}"
    async with sse(server.base_url, path) as stream:
        rest = total - len(seen)
        streamed = [(await stream.next_event()).json()["data"] for _ in range(rest)]
    await publishing
    assert seen + streamed == list(range(total))
