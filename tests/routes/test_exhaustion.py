"""What an anonymous client can make an instance spend: bounded, refused early, or refused.

Each test is one way a client without credentials could once exhaust or mislead an
instance behind a CDN; each checks the bound from outside.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from wsproto.frame_protocol import Opcode

from ..clients import publish, ws_recv_op, ws_send
from ..raw_http import answer_head
from ..serving import InProcess, StartServer
from ..tokens import SECRET, token


@pytest.fixture(scope="module")
def direct_writes() -> str:
    """Nothing here depends on how frames reach a socket: the fast path only (see conftest)."""
    return "auto"


async def get(server: InProcess, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return await client.get(path, **kwargs)  # type: ignore[arg-type]


async def eventually_metric(server: InProcess, name: str, value: float) -> None:
    async with asyncio.timeout(10):
        while True:
            if await metric(server, name) >= value:
                return
            await asyncio.sleep(0.01)


async def metric(server: InProcess, name: str) -> float:
    text = (await get(server, "/metrics")).text
    line = next(line for line in text.splitlines() if line.startswith(f"{name} "))
    return float(line.split()[1])


@pytest.fixture(scope="module")
async def guarded(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    yield await module_server_factory(
        topics=".*",
        public_topics=".*",
        publish_open="false",
        jwt_secret=SECRET,
        max_connections_per_address="2",
        publish_rate_per_address="1",
        publish_burst_per_address="3",
        max_body_bytes="65536",
    )


# -- WebSocket compression -----------------------------------------------------------------


async def test_compression_is_declined_and_a_compressed_frame_is_refused(
    server: InProcess,
) -> None:
    async with connect(f"{server.ws_url}/v1/ws") as ws:
        # The client offered permessage-deflate (websockets does by default): not accepted.
        assert ws.response is not None
        assert "sec-websocket-extensions" not in ws.response.headers
        # 64 KB of deflate that would inflate to 64 MB, sent as a compressed (RSV1) frame.
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
        bomb = deflater.compress(b"\0" * 64_000_000) + deflater.flush(zlib.Z_SYNC_FLUSH)[:-4]
        frame = bytearray([0x80 | 0x40 | Opcode.TEXT, 0x80 | 127])
        frame += len(bomb).to_bytes(8, "big") + b"\0\0\0\0" + bomb  # masked with a zero key
        ws.transport.write(bytes(frame))  # type: ignore[attr-defined]
        # A protocol error: nothing was inflated, the connection goes (with a 1002, or at
        # once).
        async with asyncio.timeout(10):
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1002
    assert (await get(server, "/healthz")).status_code == 200


# -- per-topic state ---------------------------------------------------------------------------


async def test_reading_names_kafka_does_not_have_keeps_no_state(guarded: InProcess) -> None:
    before = await metric(guarded, "herald_broadcasters")
    async with httpx.AsyncClient(base_url=guarded.base_url) as client:
        for _ in range(50):
            name = f"ghost-{uuid.uuid4().hex[:10]}"
            assert (await client.get(f"/v1/topics/{name}/snapshot")).status_code == 200
            page = await client.get(f"/v1/topics/{name}/events?after=earliest")
            assert page.status_code == 200
    assert await metric(guarded, "herald_broadcasters") == before


async def test_a_subscription_to_a_name_waits_for_it_and_leaves_nothing_behind(
    guarded: InProcess,
) -> None:
    name = f"later-{uuid.uuid4().hex[:10]}"
    before = await metric(guarded, "herald_broadcasters")
    async with connect(f"{guarded.ws_url}/v1/ws") as ws:
        await ws_send(ws, {"op": "subscribe", "topic": name})
        await ws_recv_op(ws, "subscribed")
        assert await metric(guarded, "herald_broadcasters") == before + 1
        await ws_send(ws, {"op": "unsubscribe", "topic": name})
        await ws_send(ws, {"op": "ping"})
        await ws_recv_op(ws, "pong")
    assert await metric(guarded, "herald_broadcasters") == before


# -- connections ----------------------------------------------------------------------------------


async def test_held_long_polls_count_against_the_connection_limits(guarded: InProcess) -> None:
    path = f"/v1/topics/quiet-{uuid.uuid4().hex[:8]}/events"
    async with httpx.AsyncClient(base_url=guarded.base_url, timeout=30) as client:
        held = [asyncio.create_task(client.get(path, params={"wait": "30"})) for _ in range(2)]
        try:
            await eventually_metric(guarded, "herald_long_polls_waiting", 2)
            third = await client.get(path, params={"wait": "30"})
        finally:
            for task in held:
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)
    assert third.status_code == 429


# -- publishing ------------------------------------------------------------------------------


async def test_an_anonymous_publish_is_refused_before_its_body_is_read(guarded: InProcess) -> None:
    # No byte of the body is sent: the answer comes all the same, and says it closes.
    head = await answer_head(
        guarded.port,
        b"POST /v1/topics/x/events HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n",
        5,
    )
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b"connection: close" in head.lower()


async def test_refused_publishes_count_against_the_address_rate_too(guarded: InProcess) -> None:
    async with httpx.AsyncClient(base_url=guarded.base_url) as client:
        answers = [
            (await client.post("/v1/topics/x/events", json={"data": 1})).status_code
            for _ in range(5)
        ]
    # Refused for want of a token until the address's allowance is spent; then rate limited.
    assert set(answers) == {401, 429} and answers == sorted(answers)


async def test_the_same_idempotency_key_of_two_publishers_writes_twice(
    server: InProcess, topic: str
) -> None:
    # Open publishing: publishers are told apart by address.
    key = {"Idempotency-Key": "shared-key"}
    first = await publish(server.base_url, topic, {"data": 1, "key": "k"}, headers=key)
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        other = await client.post(
            f"/v1/topics/{topic}/events",
            json={"data": 1, "key": "k"},
            headers={**key, "Authorization": f"Bearer {token('other')}"},
        )
    # The server accepts no tokens (no key configured): the other publisher is refused, but
    # never answered with the first one's ids.
    assert other.status_code == 401 and "events" not in other.text
    assert first[0]["offset"] == "0"


# -- cacheable URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["snapshot", "events"])
async def test_an_unknown_query_parameter_is_a_400(server: InProcess, endpoint: str) -> None:
    path = f"/v1/topics/it-x/{endpoint}"
    assert (await get(server, path, params={"limit": "1"})).status_code == 200
    refused = await get(server, path, params={"x": uuid.uuid4().hex})
    assert refused.status_code == 400
    assert refused.headers["cache-control"] == "no-store"


# -- what answers say ------------------------------------------------------------------------


async def test_a_503_names_no_broker_and_no_exception(server: InProcess, topic: str) -> None:
    server.memory.log.reachable = False
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            answer = await client.post(f"/v1/topics/{topic}-down/events", json={"data": 1})
    finally:
        server.memory.log.reachable = True
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert "127.0.0.1" not in detail and "Error" not in detail and "(" not in detail
