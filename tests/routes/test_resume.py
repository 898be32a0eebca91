"""Resuming from any point: cursors older than the ring come from Kafka, with an exact seam."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from service.cursor import Cursor

from ..clients import SseStream, publish, sse, ws_recv_op, ws_send
from ..serving import InProcess, Served, StartServer

RING = 5


@pytest.fixture(scope="module")
async def small_ring(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    """A server whose ring keeps only a few events, so resumes must read Kafka."""
    yield await module_server_factory(topics="it-.*", ring_size=str(RING))


async def first_event(server: Served, topic: str, key: str | None = None) -> str:
    """Publish seq 0 and return the cursor just after it, as a subscriber would see it."""
    query = f"?key={key}" if key else ""
    async with sse(server.base_url, f"/v1/topics/{topic}/stream{query}") as stream:
        await publish_seq(server, topic, range(1), key=key)
        cursor = (await stream.next_event()).id
    assert cursor is not None
    return cursor


async def receive(stream: SseStream, count: int) -> list[dict[str, Any]]:
    return [(await stream.next_event()).json() for _ in range(count)]


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["data"]["seq"] for event in events]


async def publish_seq(server: Served, topic: str, seq: range, key: str | None = None) -> None:
    body = [{"data": {"seq": n}, **({"key": key} if key else {})} for n in seq]
    for start in range(0, len(body), 100):
        await publish(server.base_url, topic, body[start : start + 100])


async def test_keyed_resume_older_than_the_ring_reads_kafka(
    small_ring: InProcess, topic: str
) -> None:
    cursor = await first_event(small_ring, topic, key="k")
    await publish_seq(small_ring, topic, range(1, 30), key="k")
    async with sse(small_ring.base_url, f"/v1/topics/{topic}/stream?key=k&since={cursor}") as s:
        caught_up = await receive(s, 29)
        await publish_seq(small_ring, topic, range(30, 35), key="k")
        live = await receive(s, 5)
    assert seqs(caught_up + live) == list(range(1, 35))


async def test_whole_topic_catch_up_hands_over_with_no_gap_or_duplicate(
    small_ring: InProcess, topic: str
) -> None:
    cursor = await first_event(small_ring, topic)
    await publish_seq(small_ring, topic, range(1, 200))
    async with sse(small_ring.base_url, f"/v1/topics/{topic}/stream?since={cursor}") as stream:
        # More events arrive while the subscriber is still reading Kafka.
        publishing = asyncio.create_task(publish_seq(small_ring, topic, range(200, 300)))
        received = await receive(stream, 299)
        await publishing
    assert sorted(seqs(received)) == list(range(1, 300))
    # Each id is the position after its event: from one to the next exactly one partition
    # moves forward and none moves back, so no record was skipped, repeated or reordered.
    previous = Cursor.decode(topic, cursor).as_dict()
    for event in received:
        now = Cursor.decode(topic, event["id"]).as_dict()
        moved = [p for p in now if now[p] != previous.get(p, 0)]
        assert len(moved) == 1 and now[moved[0]] > previous.get(moved[0], 0), (previous, now)
        previous = now


async def test_websocket_resume_from_kafka_is_recovered(small_ring: InProcess, topic: str) -> None:
    cursor = await first_event(small_ring, topic, key="k")
    await publish_seq(small_ring, topic, range(1, 20), key="k")
    async with connect(f"{small_ring.ws_url}/v1/ws") as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic, "key": "k", "since": cursor})
        subscribed = await ws_recv_op(ws, "subscribed")
        events = [await ws_recv_op(ws, "event") for _ in range(19)]
    assert subscribed["recovered"] is True and subscribed["cursor"] == cursor
    assert seqs(events) == list(range(1, 20))


async def test_since_earliest_starts_at_the_first_event(small_ring: InProcess, topic: str) -> None:
    await publish_seq(small_ring, topic, range(12), key="k")
    async with sse(small_ring.base_url, f"/v1/topics/{topic}/stream?key=k&since=earliest") as s:
        assert seqs(await receive(s, 12)) == list(range(12))


async def test_since_a_time_starts_at_the_first_event_from_then(
    small_ring: InProcess, topic: str
) -> None:
    await publish_seq(small_ring, topic, range(3), key="k")
    await asyncio.sleep(0.01)  # record timestamps have millisecond resolution
    moment = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    await asyncio.sleep(0.01)
    await publish_seq(small_ring, topic, range(3, 6), key="k")
    path = f"/v1/topics/{topic}/stream?key=k&since={moment}"
    async with sse(small_ring.base_url, path) as stream:
        assert seqs(await receive(stream, 3)) == [3, 4, 5]


async def test_resume_beyond_retention_sends_an_explicit_reset(
    small_ring: InProcess, topic: str
) -> None:
    async def delete_before(partition: int, offset: int) -> None:
        small_ring.memory.log.delete_before(topic, partition, offset)

    await check_reset_beyond_retention(small_ring, topic, delete_before)


async def check_reset_beyond_retention(
    server: Served, topic: str, delete_before: Callable[[int, int], Awaitable[None]]
) -> None:
    """Kafka forgets the first 10 of a key's 20 events (``delete_before``): resuming from the
    first one starts at the 11th and says so, on SSE and WebSocket."""
    cursor = await first_event(server, topic, key="k")
    await publish_seq(server, topic, range(1, 20), key="k")
    [(partition, _)] = Cursor.decode(topic, cursor).offsets
    await delete_before(partition, 10)
    path = f"/v1/topics/{topic}/stream?key=k&since={cursor}"
    async with sse(server.base_url, path) as stream:
        reset = await stream.next_event()
        events = await receive(stream, 10)
    assert reset.event == "reset"
    assert Cursor.decode(topic, reset.json()["cursor"]).as_dict() == {partition: 10}
    assert seqs(events) == list(range(10, 20))
    async with connect(f"{server.ws_url}/v1/ws") as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic, "key": "k", "since": cursor})
        subscribed = await ws_recv_op(ws, "subscribed")
        ws_reset = await ws_recv_op(ws, "reset")
        first = await ws_recv_op(ws, "event")
    assert subscribed["recovered"] is False
    assert ws_reset["cursor"] == subscribed["cursor"] == reset.json()["cursor"]
    assert first["data"]["seq"] == 10


@pytest.mark.parametrize("since", ["2026-13-45T00:00:00Z", "2026-01-01T00:00:00", "x" * 5000])
async def test_bad_since_is_400(small_ring: InProcess, since: str) -> None:
    async with httpx.AsyncClient(base_url=small_ring.base_url) as client:
        response = await client.get("/v1/topics/it-x/stream", params={"since": since})
    assert response.status_code == 400
    assert response.json()["type"] == "urn:herald:problem:bad-cursor"
