"""HTTP load: publishing and snapshot requests. ``python -m tests.load.gen_http --help``.

Commands (after ``ready``):

- ``steady {topic, rate, duration, batch, keys?, first_key?, pad}``: open-loop publishing at
  ``rate`` events a second, ``batch`` events per POST, over a pool of keep-alive connections;
  every event's data carries ``ts``, the wall-clock time its POST was written, so subscribers
  can measure end-to-end latency. Answers ``published``.
- ``load {method, path, duration, count?, concurrency, batch, pad, headers?}``: closed-loop
  requests, each of ``concurrency`` workers on its own connection, until ``duration`` passed
  (or ``count`` events were accepted). Answers ``result``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import time
from collections import Counter
from typing import Any

from .control import (
    MAX_LIFETIME_S,
    client_tls,
    emit,
    process_cpu_s,
    run_generator,
    serve_commands,
)
from .gen_ws import key_name
from .histogram import Histogram
from .httpclient import HttpConnection

HOST = "127.0.0.1"
JSON = {"Content-Type": "application/json"}
REQUEST_TIMEOUT_S = 30.0


def event_body(seq: int, pad: str, key: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {"data": {"ts": time.time(), "seq": seq, "pad": pad}}
    if key is not None:
        event["key"] = key
    return event


class Pool:
    """Keep-alive connections, reused across commands, and the headers every POST carries."""

    def __init__(
        self, port: int, post_headers: dict[str, str], tls: ssl.SSLContext | None = None
    ) -> None:
        self.port = port
        self.post_headers = {**JSON, **post_headers}
        self.tls = tls
        self.idle: list[HttpConnection] = []

    def take(self) -> HttpConnection:
        return self.idle.pop() if self.idle else HttpConnection(HOST, self.port, self.tls)

    def give(self, connection: HttpConnection) -> None:
        self.idle.append(connection)


async def steady(pool: Pool, command: dict[str, Any]) -> dict[str, Any]:
    """Publish ``rate`` events a second for ``duration`` seconds, whatever the answers take."""
    loop = asyncio.get_running_loop()
    topic, rate, batch = command["topic"], float(command["rate"]), int(command["batch"])
    keys: int | None = command.get("keys")
    first_key = int(command.get("first_key") or 0)
    pad = "x" * int(command.get("pad", 0))
    posts = max(1, round(rate * float(command["duration"]) / batch))
    interval = batch / rate
    # Open loop: a slow answer must not hold back the next POST, up to this many at once.
    in_flight = asyncio.Semaphore(int(command.get("connections", 128)))
    statuses: Counter[int] = Counter()
    latency = Histogram()
    accepted = 0
    lateness = 0.0
    errors: list[str] = []
    path = f"/v1/topics/{topic}/events"

    async def post(index: int) -> None:
        nonlocal accepted
        events = []
        for seq in range(index * batch, index * batch + batch):
            key = key_name(first_key + seq % keys) if keys else None
            events.append(event_body(seq, pad, key))
        connection = pool.take()
        try:
            sent = time.monotonic()
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, _headers, _body = await connection.request(
                    "POST", path, pool.post_headers, json.dumps(events).encode()
                )
            latency.record(time.monotonic() - sent)
            statuses[status] += 1
            if status == 201:
                accepted += batch
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            statuses[0] += 1
            await connection.close()
            if len(errors) < 5:
                errors.append(repr(exc))
        finally:
            pool.give(connection)
            in_flight.release()

    started = loop.time()
    tasks: set[asyncio.Task[None]] = set()
    for index in range(posts):
        due = started + index * interval
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await in_flight.acquire()
        lateness = max(lateness, loop.time() - due)
        task = asyncio.create_task(post(index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
    wall = loop.time() - started
    return {
        "event": "published",
        "accepted": accepted,
        "posts": posts,
        "events": posts * batch,
        "statuses": {str(k): v for k, v in statuses.items()},
        "wall_s": wall,
        "rate": accepted / wall if wall else 0.0,
        "max_lateness_s": lateness,
        "errors": errors,
        "post_latency": latency.to_json(),
        "cpu_s": process_cpu_s(),
    }


async def load(pool: Pool, command: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop requests from ``concurrency`` workers until the time or count is up."""
    method, path = command["method"], command["path"]
    duration = float(command["duration"])
    count: int | None = command.get("count")
    batch = int(command.get("batch", 1))
    pad = "x" * int(command.get("pad", 0))
    headers = dict(command.get("headers") or {})
    if method == "POST":
        headers.update(pool.post_headers)
    statuses: Counter[int] = Counter()
    latency = Histogram()
    events = 0
    requests = 0
    issued = 0
    seq = 0
    deadline = time.monotonic() + duration

    def body() -> bytes:
        nonlocal seq
        if method != "POST":
            return b""
        batch_events = [event_body(seq + i, pad, None) for i in range(batch)]
        seq += batch
        return json.dumps(batch_events[0] if batch == 1 else batch_events).encode()

    async def worker() -> None:
        nonlocal events, requests, issued
        connection = pool.take()
        try:
            while time.monotonic() < deadline and (count is None or issued < count):
                issued += batch
                sent = time.monotonic()
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        status, _headers, _content = await connection.request(
                            method, path, headers, body()
                        )
                except (OSError, TimeoutError, asyncio.IncompleteReadError):
                    statuses[0] += 1
                    await connection.close()
                    continue
                latency.record(time.monotonic() - sent)
                statuses[status] += 1
                requests += 1
                if status == 201:
                    events += batch
        finally:
            pool.give(connection)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(int(command["concurrency"]))))
    wall = time.monotonic() - started
    return {
        "event": "result",
        "requests": requests,
        "events": events,
        "statuses": {str(k): v for k, v in statuses.items()},
        "wall_s": wall,
        "latency": latency.to_json(),
        "cpu_s": process_cpu_s(),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.load.gen_http")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", help="a bearer token for the POSTs")
    parser.add_argument("--ca-file", help="HTTPS, trusting this CA (the server's test CA)")
    parser.add_argument("--lifetime", type=float, default=MAX_LIFETIME_S)
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    pool = Pool(args.port, headers, client_tls(args.ca_file))
    emit({"event": "ready"})

    async def run_steady(command: dict[str, Any]) -> dict[str, Any]:
        return await steady(pool, command)

    async def run_load(command: dict[str, Any]) -> dict[str, Any]:
        return await load(pool, command)

    await serve_commands({"steady": run_steady, "load": run_load}, args.lifetime)


if __name__ == "__main__":
    run_generator(main)
