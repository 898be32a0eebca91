"""A subscriber that stops reading is cut off as lagging, with its cursor; nobody else waits."""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..clients import publish, sse, ws_recv, ws_recv_op, ws_send
from ..serving import InProcess, StartServer

EVENTS = 3000
BATCH = 100  # well under the queue size of 200
PAYLOAD = "x" * 4000  # big enough that socket buffers fill and the server's queue overflows


@pytest.fixture(scope="module")
async def small_queue(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    yield await module_server_factory(
        topics="it-.*", subscriber_queue_size="200", send_timeout_s="60", max_body_bytes="4194304"
    )


def tiny_socket(server: InProcess) -> socket.socket:
    """A client socket with a small receive buffer: it stops taking data almost at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    return sock


async def subscribe(ws: ClientConnection, topic: str, since: str | None = None) -> None:
    await ws_send(ws, {"op": "subscribe", "topic": topic, "key": "k", "since": since})
    await ws_recv_op(ws, "subscribed")


async def read_events(ws: ClientConnection, count: int) -> list[int]:
    return [(await ws_recv_op(ws, "event"))["data"]["n"] for _ in range(count)]


async def test_a_stalled_subscriber_is_cut_off_and_the_others_get_everything(
    small_queue: InProcess, topic: str
) -> None:
    url = f"{small_queue.ws_url}/v1/ws"
    async with (
        # No compression: the padding would shrink to nothing and never fill a buffer. No
        # keepalive pings: a client that reads nothing never sees the pongs, and would close
        # the connection itself (1011) if the test ran long on a busy machine.
        connect(
            url,
            sock=tiny_socket(small_queue),
            max_queue=1,
            compression=None,
            ping_interval=None,
        ) as stalled,
        connect(url, max_size=None) as r1,
        connect(url, max_size=None) as r2,
        connect(url, max_size=None) as r3,
        sse(small_queue.base_url, f"/v1/topics/{topic}/stream?key=k") as stream,
    ):
        readers = [r1, r2, r3]
        for ws in [stalled, *readers]:
            await subscribe(ws, topic)
        everyone: list[list[int]] = [[] for _ in range(len(readers) + 1)]
        for start in range(0, EVENTS, BATCH):
            batch = range(start, start + BATCH)
            body = [{"key": "k", "data": {"n": n, "pad": PAYLOAD}} for n in batch]
            await publish(small_queue.base_url, topic, body)
            # The readers take each batch before the next is sent: they keep up by
            # construction however busy this machine is, while the stalled one reads nothing.
            batches = await asyncio.gather(
                *(read_events(ws, BATCH) for ws in readers), _read_sse(stream, BATCH)
            )
            for received, got_now in zip(everyone, batches, strict=True):
                received.extend(got_now)
        assert all(received == list(range(EVENTS)) for received in everyone)

        # Now the stalled client reads what reached it, then the lagging notice and close.
        got: list[int] = []
        lagging: dict[str, Any] = {}
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                message = await ws_recv(stalled)
                if message["op"] == "event":
                    got.append(message["data"]["n"])
                    last_id = message["id"]
                elif message["op"] == "lagging":
                    lagging = message
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409
    assert got == list(range(len(got))) and len(got) < EVENTS
    assert lagging["cursor"] == last_id
    # Resuming from the lagging cursor yields exactly the rest.
    async with connect(url, max_size=None) as again:
        await subscribe(again, topic, since=lagging["cursor"])
        rest = await read_events(again, EVENTS - len(got))
    assert got + rest == list(range(EVENTS))


async def _read_sse(stream: Any, count: int) -> list[int]:
    return [(await stream.next_event()).json()["data"]["n"] for _ in range(count)]


@pytest.fixture(scope="module")
async def short_deadline(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    # A queue too big to overflow here: only the send deadline can cut the stalled client.
    yield await module_server_factory(
        topics="it-.*", subscriber_queue_size="100000", send_timeout_s="1", max_body_bytes="4194304"
    )


async def test_a_write_that_stalls_past_the_send_deadline_drops_the_subscriber(
    short_deadline: InProcess, topic: str, direct_writes: str
) -> None:
    url = f"{short_deadline.ws_url}/v1/ws"
    stalled_socket = tiny_socket(short_deadline)
    async with (
        # No keepalive pings (see above): the client writes nothing once subscribed, so only
        # the server can end this connection. Its own close at the end need not wait for an
        # answer the server may never send (on the ASGI path it holds the socket a while).
        connect(
            url,
            sock=stalled_socket,
            max_queue=1,
            compression=None,
            ping_interval=None,
            close_timeout=0.5,
        ) as stalled,
        connect(url, max_size=None) as reader,
        httpx.AsyncClient(base_url=short_deadline.base_url) as client,
    ):
        # The test's own descriptor of the connection: the client library closes its socket
        # object as soon as it notices the reset, which must not hide the reset from the test.
        with stalled_socket.dup() as watched:
            for ws in (stalled, reader):
                await subscribe(ws, topic)
            read_batch = partial(read_events, reader, BATCH)
            await _publish_until_cut(short_deadline, client, topic, read_batch)
            if direct_writes == "auto":
                # The server dropped the connection itself, though the client still reads
                # nothing (a close would wait for the client to take what is buffered first).
                await _until_reset(watched)
            # Herald let go of it (on the plain ASGI path the server closes the socket in its
            # own time): only the reader is left.
            await _until_connections(client, "ws", 1)


async def test_an_sse_stream_that_stalls_past_the_send_deadline_is_dropped(
    short_deadline: InProcess, topic: str, direct_writes: str
) -> None:
    async with (
        sse(short_deadline.base_url, f"/v1/topics/{topic}/stream?key=k") as stream,
        httpx.AsyncClient(base_url=short_deadline.base_url) as client,
    ):
        # A bare socket: no transport reads it in the background once the test stops.
        with tiny_socket(short_deadline) as stalled_socket:
            loop = asyncio.get_running_loop()
            request = f"GET /v1/topics/{topic}/stream?key=k HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            await loop.sock_sendall(stalled_socket, request.encode())
            head = b""
            while b"retry:" not in head:  # subscribed; from here it reads nothing
                head += await loop.sock_recv(stalled_socket, 4096)
            read_batch = partial(_read_sse, stream, BATCH)
            await _publish_until_cut(short_deadline, client, topic, read_batch)
            if direct_writes == "auto":
                await _until_reset(stalled_socket)
            await _until_connections(client, "sse", 1)  # only the reader is left


async def _until_reset(sock: socket.socket) -> None:
    """Wait until the server ended the connection, though the client reads nothing.

    poll() reports a reset or a hang-up whatever is still unread; data alone (POLLIN, not
    asked for) does not wake it.
    """

    def wait() -> int:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLRDHUP)  # POLLHUP and POLLERR always count
        return len(poller.poll(30_000))

    assert await asyncio.to_thread(wait), "the server still holds the connection after 30 s"


async def _until_connections(client: httpx.AsyncClient, transport: str, count: int) -> None:
    """Wait until /metrics counts ``count`` open connections of ``transport``."""
    line = f'herald_connections{{transport="{transport}"}} {count:.1f}'
    async with asyncio.timeout(10):
        while True:
            if line in (await client.get("/metrics")).text:
                return
            await asyncio.sleep(0.05)


async def _lagging_total(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("herald_subscribers_lagging_total"))
    return float(line.split()[-1])


async def _publish_until_cut(
    server: InProcess,
    client: httpx.AsyncClient,
    topic: str,
    read_batch: Callable[[], Awaitable[list[int]]],
) -> None:
    """Publish until the server gave up on the stalled client.

    The server is another process, so its /metrics is asked after each batch; the reader
    keeps up by reading each batch before the next.
    """
    before = await _lagging_total(client)
    async with asyncio.timeout(60):
        while await _lagging_total(client) == before:
            body = [{"key": "k", "data": {"n": n, "pad": PAYLOAD}} for n in range(BATCH)]
            await publish(server.base_url, topic, body)
            assert await read_batch() == list(range(BATCH))
