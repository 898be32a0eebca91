"""Limits hold: floods, idlers, slow senders, too many connections, too fast publishers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from ..certificates import make_certificates
from ..clients import sse, ws_recv, ws_send
from ..serving import InProcess, StartServer
from ..tokens import SECRET, token


@pytest.fixture(scope="module")
def direct_writes() -> str:
    """Nothing here depends on how frames reach a socket: the fast path only (see conftest)."""
    return "auto"


@pytest.fixture(scope="module")
async def limited(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    yield await module_server_factory(
        topics="it-.*",
        jwt_secret=SECRET,
        ws_message_rate_per_s="5",
        ws_message_burst="10",
        ws_idle_timeout_s="0.5",
        max_connections_per_address="2",
        publish_rate_per_address="5",
        publish_burst_per_address="5",
        publish_rate_per_token="1",
        publish_burst_per_token="2",
        body_timeout_s="1",
    )


async def close_code(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws_recv(ws)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_a_message_flood_closes_the_websocket(limited: InProcess) -> None:
    async with connect(f"{limited.ws_url}/v1/ws?topic=it-flood") as ws:
        for _ in range(30):
            await ws_send(ws, {"op": "ping"})
        assert await close_code(ws) == 4429


async def test_a_flood_still_ends_the_connection_after_the_close(limited: InProcess) -> None:
    # The frames after the one that broke the limit are never read: they wait in Hypercorn's
    # queue and must not hold up the connection's end (the socket closes after the close
    # frame, whatever is queued).
    client = WSConnection(ConnectionType.CLIENT)
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
    writer.write(client.send(Request(host="127.0.0.1", target="/v1/ws?topic=it-flood")))
    codes: list[int] = []
    accepted = False
    try:
        async with asyncio.timeout(15):
            while not accepted:
                client.receive_data(await reader.read(65536))
                accepted = any(isinstance(event, AcceptConnection) for event in client.events())
            # All at once, before the server has closed: nothing the client sends is refused.
            writer.write(b"".join(client.send(TextMessage('{"op":"ping"}')) for _ in range(300)))
            while data := await reader.read(65536):
                client.receive_data(data)
                codes += [e.code for e in client.events() if isinstance(e, CloseConnection)]
    finally:
        writer.close()
    assert codes == [4429]


async def test_an_idle_websocket_with_no_subscription_is_closed(limited: InProcess) -> None:
    async with connect(f"{limited.ws_url}/v1/ws") as ws:
        assert await close_code(ws) == 4408


async def test_connections_per_address_are_limited(limited: InProcess, topic: str) -> None:
    path = f"/v1/topics/{topic}/stream"
    async with sse(limited.base_url, path), sse(limited.base_url, path):
        async with httpx.AsyncClient(base_url=limited.base_url) as client:
            third = await client.get(path)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{limited.ws_url}/v1/ws"):
                pass
    assert third.status_code == 429 and int(third.headers["retry-after"]) > 0
    assert refused.value.response.status_code == 429
    # Closed streams give their places back.
    async with sse(limited.base_url, path), sse(limited.base_url, path):
        pass


async def test_publish_rate_is_limited_per_address_and_per_token(
    limited: InProcess, topic: str
) -> None:
    path = f"/v1/topics/{topic}/events"
    async with httpx.AsyncClient(base_url=limited.base_url) as client:
        too_many = await client.post(path, json=[{"data": n} for n in range(6)])
        writer = {"Authorization": f"Bearer {token('w', publish=['*'])}"}
        within = await client.post(path, json=[{"data": 1}, {"data": 2}], headers=writer)
        over = await client.post(path, json={"data": 3}, headers=writer)
    assert too_many.status_code == 429 and int(too_many.headers["retry-after"]) >= 1
    assert too_many.json()["type"] == "urn:herald:problem:rate-limited"
    assert within.status_code == 201
    assert over.status_code == 429


async def test_headers_that_never_finish_are_cut_off(limited: InProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
    await writer.drain()
    async with asyncio.timeout(30):
        rest = await reader.read()  # EOF once the server gives up on us
    writer.close()
    assert b"200" not in rest


async def test_a_body_that_trickles_in_is_cut_off(limited: InProcess, topic: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.port)
    writer.write(
        f"POST /v1/topics/{topic}/events HTTP/1.1\r\nHost: x\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"data":'.encode()
    )
    await writer.drain()
    async with asyncio.timeout(30):
        answer = await reader.read()
    writer.close()
    assert b" 201 " not in answer


@pytest.fixture(scope="module")
async def capped(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    yield await module_server_factory(topics="it-.*", max_connections="2")


async def test_the_global_connection_cap_answers_503(capped: InProcess, topic: str) -> None:
    path = f"/v1/topics/{topic}/stream"
    async with (
        sse(capped.base_url, path),
        sse(capped.base_url, path),
        httpx.AsyncClient(base_url=capped.base_url) as client,
    ):
        third = await client.get(path)
    assert third.status_code == 503 and third.json()["type"] == "urn:herald:problem:busy"
    assert int(third.headers["retry-after"]) > 0


async def test_tls_serves_http2_with_hsts(
    function_server_factory: StartServer, tmp_path: Path, topic: str
) -> None:
    certs = make_certificates(tmp_path)
    server = await function_server_factory(
        topics="it-.*", tls_cert=str(certs.server_cert), tls_key=str(certs.server_key)
    )
    context = ssl.create_default_context(cafile=str(certs.ca_file))
    async with httpx.AsyncClient(base_url=server.base_url, http2=True, verify=context) as client:
        response = await client.get("/healthz")
        # Herald's own ASGI routes answer the same over HTTP/2 as Quart's.
        published = await client.post(f"/v1/topics/{topic}/events", json={"data": 1})
    hsts = "max-age=31536000; includeSubDomains"
    assert response.http_version == "HTTP/2"
    assert response.headers["strict-transport-security"] == hsts
    assert published.status_code == 201, published.text
    assert published.http_version == "HTTP/2"
    assert published.headers["strict-transport-security"] == hsts
