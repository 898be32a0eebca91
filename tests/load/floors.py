"""What this machine allows without Herald: ``python -m tests.load.floors <kind> --help``.

Each kind measures one part of Herald's path done by the least code that can do it, and
prints one JSON line; the ``floor`` scenario puts the figures next to Herald's:

- ``loopback``: one process writes each event (250 bytes, the size of a small Herald event
  frame) to N loopback TCP sockets in a plain loop; readers in other processes take them
  with epoll. The fan-out part of end-to-end latency, without Python frameworks or Kafka.
- ``kafka``: an aiokafka producer (acks=all) and consumer with Herald's client settings, one
  event at a time: the Kafka part of end-to-end latency.
- ``hypercorn-idle``: Hypercorn with Herald's configuration on uvloop, serving an ASGI app
  that accepts WebSockets and opens SSE responses and then only waits: the resident memory
  an idle connection costs before any Quart or Herald object exists.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import select
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from multiprocessing.connection import Connection
from typing import Any

from tests.processes import free_port

from .bench import split
from .control import emit, process_cpu_s, raise_fd_limit
from .histogram import Histogram
from .meter import PAGE_BYTES, rss_pages

EVENT_BYTES = 250
_STAMP = struct.Struct("d")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.load.floors")
    kinds = parser.add_subparsers(dest="kind", required=True)
    loopback = kinds.add_parser("loopback")
    loopback.add_argument("--sockets", type=int, default=1000)
    loopback.add_argument("--readers", type=int, default=2)
    loopback.add_argument("--rate", type=float, default=20.0)
    loopback.add_argument("--duration", type=float, default=10.0)
    kafka = kinds.add_parser("kafka")
    kafka.add_argument("--bootstrap", required=True)
    kafka.add_argument("--rate", type=float, default=20.0)
    kafka.add_argument("--duration", type=float, default=10.0)
    idle = kinds.add_parser("hypercorn-idle")
    idle.add_argument("--connections", type=int, default=5000, help="of each kind")
    idle.add_argument("--clients", type=int, default=2, help="client processes")
    return parser.parse_args()


# -- loopback ----------------------------------------------------------------------------------


def read_events(port: int, sockets: int, events: int, results: Connection) -> None:
    """Connect ``sockets`` times; record each event's latency until all have come."""
    raise_fd_limit()
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(sockets)]
    poller = select.epoll()
    pending: dict[int, bytes] = {}
    by_fd = {}
    for conn in conns:
        conn.setblocking(False)
        poller.register(conn.fileno(), select.EPOLLIN)
        by_fd[conn.fileno()] = conn
        pending[conn.fileno()] = b""
    results.send("connected")
    histogram = Histogram()
    wanted = sockets * events
    while histogram.count < wanted:
        for fd, _ in poller.poll():
            data = pending[fd] + by_fd[fd].recv(1 << 16)
            now = time.monotonic()
            whole = len(data) - len(data) % EVENT_BYTES
            for start in range(0, whole, EVENT_BYTES):
                histogram.record(now - _STAMP.unpack_from(data, start)[0])
            pending[fd] = data[whole:]
    results.send(histogram.to_json())
    for conn in conns:
        conn.close()


def loopback(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    events = max(1, int(args.rate * args.duration))
    listener = socket.create_server(("127.0.0.1", 0), backlog=args.sockets)
    port = listener.getsockname()[1]
    shares = split(args.sockets, args.readers)
    with readers(read_events, [(port, n, events) for n in shares]) as pipes:
        conns = []
        for _ in range(args.sockets):
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns.append(conn)
        for pipe in pipes:
            assert pipe.recv() == "connected"
        padding = bytes(EVENT_BYTES - _STAMP.size)
        spans = Histogram()
        start_cpu, start = process_cpu_s(), time.monotonic()
        for index in range(events):
            # A steady rate, as the publisher of the fan-out scenarios keeps.
            time.sleep(max(0.0, start + index / args.rate - time.monotonic()))
            began = time.monotonic()
            event = _STAMP.pack(began) + padding
            for conn in conns:
                conn.sendall(event)
            spans.record(time.monotonic() - began)
        writer_cpu_s = process_cpu_s() - start_cpu
        latency = Histogram.merged(Histogram.from_json(pipe.recv()) for pipe in pipes)
    for conn in conns:
        conn.close()
    writes = events * args.sockets
    return {
        "latency_ms": latency.summary_ms(),
        "span_ms": spans.summary_ms(),
        "us_per_write": spans.total_s / writes * 1e6,
        "writer_cpu_us_per_write": writer_cpu_s / writes * 1e6,
    }


@contextmanager
def readers(
    target: Callable[..., None], arg_lists: list[tuple[Any, ...]]
) -> Iterator[list[Connection]]:
    """Processes running ``target(*args, pipe)``, each with a pipe back; ended on exit."""
    # Spawned, not forked: the parent may be running an event loop and a server.
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for args in arg_lists:
        ours, theirs = context.Pipe()
        process = context.Process(target=target, args=(*args, theirs), daemon=True)
        process.start()
        pipes.append(ours)
        processes.append(process)
    try:
        yield pipes
    finally:
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()


# -- kafka -------------------------------------------------------------------------------------


async def kafka(args: argparse.Namespace) -> dict[str, Any]:
    from aiokafka import TopicPartition

    from service.config import load_settings
    from service.kafka.clients import AioKafka

    settings = load_settings({"HERALD_KAFKA_BOOTSTRAP": args.bootstrap})
    kafka = AioKafka(settings)
    topic = f"bench-floor-{uuid.uuid4().hex[:8]}"
    admin = kafka.admin("floor-admin")
    await admin.start()
    try:
        await admin.create_topic(topic, 1, 1)
    finally:
        await admin.close()
    # The clients Herald itself publishes and consumes with: the floor is what they can do.
    producer = kafka.producer("floor-producer")
    consumer = kafka.consumer("floor-consumer")
    await producer.start()
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        # Not part of the floor: the first sends wait for metadata and connections, and a
        # broker that just started (a lone `floor` run) answers slowly until the JVM warmed up.
        await steady_sends(producer, consumer, topic, rate=200.0, events=400)
        acks, latency = await steady_sends(
            producer, consumer, topic, args.rate, max(1, int(args.rate * args.duration))
        )
    finally:
        await consumer.stop()
        await producer.stop()
    return {"ack_ms": acks.summary_ms(), "latency_ms": latency.summary_ms()}


async def steady_sends(
    producer: Any, consumer: Any, topic: str, rate: float, events: int
) -> tuple[Histogram, Histogram]:
    """Send ``events`` at ``rate``, each as soon as it is due; (ack times, send to consume)."""
    acks, latency = Histogram(), Histogram()

    async def send() -> None:
        began = time.monotonic()
        await (await producer.send(topic, _STAMP.pack(began)))
        acks.record(time.monotonic() - began)

    async def receive() -> None:
        while latency.count < events:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    latency.record(now - _STAMP.unpack(record.value)[0])

    receiving = asyncio.create_task(receive())
    start = time.monotonic()
    sending = []
    for index in range(events):
        await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
        sending.append(asyncio.create_task(send()))
    await asyncio.gather(*sending)
    await asyncio.wait_for(receiving, 30)
    return acks, latency


# -- hypercorn-idle ----------------------------------------------------------------------------


async def idle_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept every WebSocket, open every HTTP request as an SSE stream; then only wait."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "subprotocol": None})
        while (await receive())["type"] != "websocket.disconnect":
            pass
    else:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass


def open_connections(port: int, kind: str, count: int, results: Connection) -> None:
    """Open ``count`` WebSockets or SSE streams and hold them until told to let go."""
    raise_fd_limit()
    key = base64.b64encode(os.urandom(16)).decode()
    request = {
        "ws": (
            "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
        "sse": "GET /v1/sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
    }[kind].encode()
    held = []
    for _ in range(count):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(4096)
            assert chunk, "the server closed the connection"
            answer += chunk
        assert answer.startswith((b"HTTP/1.1 101", b"HTTP/1.1 200")), answer[:40]
        held.append(conn)
    results.send("held")
    results.recv()  # let go
    for conn in held:
        conn.close()


async def hypercorn_idle(args: argparse.Namespace) -> dict[str, Any]:
    from hypercorn.asyncio import serve

    from service.config import load_settings
    from service.server import hypercorn_config

    raise_fd_limit()
    port = free_port()
    config = hypercorn_config(load_settings({"HERALD_BIND": f"127.0.0.1:{port}"}))
    config.backlog = 4096
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(idle_app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    await wait_listening(port)
    per_kind: dict[str, float] = {}
    shares = split(args.connections, args.clients)
    with ExitStack() as holding:
        everyone = []
        for kind in ("ws", "sse"):
            before = rss_bytes()
            pipes = holding.enter_context(
                readers(open_connections, [(port, kind, n) for n in shares])
            )
            for pipe in pipes:
                # In a thread: the server must go on serving meanwhile.
                assert await asyncio.to_thread(pipe.recv) == "held"
            per_kind[kind] = (rss_bytes() - before) / args.connections
            everyone += pipes
        for pipe in everyone:
            pipe.send("let go")
    stop.set()
    await serving
    return {
        "bytes_per_ws": per_kind["ws"],
        "bytes_per_sse": per_kind["sse"],
        "bytes_per_connection": (per_kind["ws"] + per_kind["sse"]) / 2,
    }


async def wait_listening(port: int) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


def rss_bytes() -> int:
    """This process's resident memory, without its client processes'."""
    return rss_pages(os.getpid()) * PAGE_BYTES


def main() -> None:
    args = parse_args()
    if args.kind == "loopback":
        emit(loopback(args))
    elif args.kind == "kafka":
        emit(asyncio.run(kafka(args)))
    else:
        import uvloop

        emit(uvloop.run(hypercorn_idle(args)))


if __name__ == "__main__":
    main()
