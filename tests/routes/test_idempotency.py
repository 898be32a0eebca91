"""Idempotency-Key (and a WebSocket publish's string ref): retries write nothing new."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect

from service.idempotency import HEADER, tags_for

from ..clients import publish, sse, ws_recv_op, ws_send
from ..scrape import scrape
from ..serving import InProcess, StartServer


@pytest.fixture(scope="module")
def direct_writes() -> str:
    """Nothing here depends on how frames reach a socket: the fast path only (see conftest)."""
    return "auto"


async def post(server: InProcess, topic: str, body: object, key: str | None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return await client.post(f"/v1/topics/{topic}/events", json=body, headers=headers)


async def test_a_retry_returns_the_original_ids_and_writes_nothing(
    server: InProcess, topic: str
) -> None:
    key = str(uuid.uuid4())
    body = [{"data": 1, "key": "k"}, {"data": 2, "key": "k"}]
    first = await post(server, topic, body, key)
    again = await post(server, topic, body, key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    # Nothing was written by the retry: the next event on that key follows the first two.
    [after] = await publish(server.base_url, topic, {"data": 3, "key": "k"})
    assert after["offset"] == "2"


async def test_a_key_reused_for_another_body_is_422(server: InProcess, topic: str) -> None:
    key = str(uuid.uuid4())
    assert (await post(server, topic, {"data": 1}, key)).status_code == 201
    reused = await post(server, topic, {"data": 2}, key)
    assert reused.status_code == 422


async def test_a_malformed_key_is_400(server: InProcess, topic: str) -> None:
    response = await post(server, topic, {"data": 1}, "k" * 129)
    assert response.status_code == 400


async def test_a_retry_on_another_instance_is_answered_from_its_consumer(
    server: InProcess, function_server_factory: StartServer, topic: str
) -> None:
    other = await function_server_factory(topics=r"(it|other)-[A-Za-z0-9._-]+")
    key = str(uuid.uuid4())
    body = {"data": "once"}
    async with sse(other.base_url, f"/v1/topics/{topic}/stream") as stream:
        first = await post(server, topic, body, key)
        await stream.next_event()  # the other instance has consumed the record
        again = await post(other, topic, body, key)
        await publish(other.base_url, topic, {"data": "marker"})
        following = await stream.next_event()
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert following.json()["data"] == "marker"


@pytest.fixture(scope="module")
async def small_ring(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    yield await module_server_factory(topics="it-.*", ring_size="2")


async def test_a_duplicate_copy_in_kafka_is_delivered_once(
    small_ring: InProcess, topic: str
) -> None:
    """Two records with one idempotency tag (a retry that raced the first write)."""
    [tag] = tags_for(str(uuid.uuid4()), [("message", "k", "copy")])
    log = small_ring.memory.log
    before = await scrape(small_ring.base_url)
    dropped = before.total("herald_events_dropped_total", reason="duplicate")
    async with sse(small_ring.base_url, f"/v1/topics/{topic}/stream?key=k") as stream:
        [created] = await publish(small_ring.base_url, topic, {"data": "before", "key": "k"})
        await stream.next_event()
        for _ in range(2):
            log.append(topic, b'"copy"', b"k", None, [(HEADER, tag.header())])
        await publish(small_ring.base_url, topic, {"data": "after", "key": "k"})
        live = [(await stream.next_event()).json()["data"] for _ in range(2)]
    assert live == ["copy", "after"]
    metrics = await scrape(small_ring.base_url)
    assert metrics.total("herald_events_dropped_total", reason="duplicate") == dropped + 1
    # A resume from before both copies reads Kafka (the ring holds 2): still one copy.
    path = f"/v1/topics/{topic}/stream?key=k&since={created['id']}"
    async with sse(small_ring.base_url, path) as stream:
        replayed = [(await stream.next_event()).json()["data"] for _ in range(2)]
    assert replayed == ["copy", "after"]


async def test_websocket_string_ref_makes_a_resent_publish_idempotent(
    server: InProcess, topic: str
) -> None:
    ref = str(uuid.uuid4())
    message = {"op": "publish", "topic": topic, "key": "k", "data": "hello", "ref": ref}
    async with connect(f"{server.ws_url}/v1/ws") as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic, "key": "k"})
        await ws_recv_op(ws, "subscribed")
        await ws_send(ws, message)
        first = await ws_recv_op(ws, "ack")
        await ws_send(ws, message)
        second = await ws_recv_op(ws, "ack")
        await ws_send(ws, {**message, "data": "next", "ref": 7})
        third = await ws_recv_op(ws, "ack")
        events = [await ws_recv_op(ws, "event") for _ in range(2)]
    assert first["id"] == second["id"] != third["id"]
    assert [event["data"] for event in events] == ["hello", "next"]
