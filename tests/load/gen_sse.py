"""Server-Sent Events subscribers as a load generator: ``python -m tests.load.gen_sse --help``.

Besides the subscriber commands (see subscriber_gen), ``catchup {since, expect, within}``
opens one more stream that resumes from ``since`` and reads until ``expect`` events arrived,
following ``lagging`` goodbyes by reconnecting with ``Last-Event-ID`` as a browser would.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any
from urllib.parse import urlencode

from .control import MAX_LIFETIME_S, client_tls, run_generator
from .gen_ws import key_name
from .h3_subscriber import H3SseSubscriber
from .subscriber_gen import connect, serve_subscribers
from .subscribers import SseSubscriber, Subscriber
from .tally import Tally

# A resuming client that hears nothing for this long has everything the server will send.
QUIET_S = 2.0
MAX_RECONNECTS = 1000


class ResumingSubscriber(SseSubscriber):
    """Remembers the id of the last event and when the first and last one arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_at: float | None = None
        self.last_at = 0.0

    def on_event(self, block: bytes) -> None:
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        if block.startswith(b"id: "):
            self.last_id = block[4 : block.index(b"\r\n")].decode()


async def catch_up(port: int, topic: str, since: str, expect: int, within: float) -> dict[str, Any]:
    """Resume from ``since`` until ``expect`` events arrived; how fast, and by which path."""
    tally = Tally()
    tally.expect(expect)
    started = time.monotonic()
    first_at: float | None = None
    last_at = started
    reconnects = 0
    cursor = since
    deadline = started + within
    path = f"/v1/topics/{topic}/stream?{urlencode({'since': since})}"
    headers: dict[str, str] = {}
    while True:
        subscriber = ResumingSubscriber(tally, "127.0.0.1", port, path, headers)
        await connect(subscriber, "127.0.0.1", port)
        try:
            while not tally.reached.is_set() and not subscriber.ended.is_set():
                seen = tally.events
                reached = asyncio.ensure_future(tally.reached.wait())
                ended = asyncio.ensure_future(subscriber.ended.wait())
                _done, pending = await asyncio.wait(
                    {reached, ended},
                    timeout=min(QUIET_S, max(0.0, deadline - time.monotonic())),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in pending:
                    task.cancel()
                if time.monotonic() >= deadline or (tally.events == seen and seen > 0):
                    break
        finally:
            subscriber.close()
        if subscriber.first_at is not None:
            first_at = first_at if first_at is not None else subscriber.first_at
            last_at = subscriber.last_at
        if (
            tally.reached.is_set()
            or subscriber.goodbye != "lagging"
            or reconnects >= MAX_RECONNECTS
            or time.monotonic() >= deadline
        ):
            break
        # As EventSource does: reconnect and name the last id seen (the lagging cursor).
        reconnects += 1
        cursor = subscriber.last_id or cursor
        path = f"/v1/topics/{topic}/stream"
        headers = {"Last-Event-ID": cursor}
    return {
        "event": "caught-up",
        "events": tally.events,
        "complete": tally.events >= expect,
        "wall_s": last_at - started,
        "first_event_s": (first_at - started) if first_at is not None else None,
        "reconnects": reconnects,
        "controls": dict(tally.controls),
        "latency": tally.latency.to_json(),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.load.gen_sse")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--connections", type=int, default=0)
    parser.add_argument("--first-key", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--lifetime", type=float, default=MAX_LIFETIME_S)
    parser.add_argument("--ca-file", help="HTTPS, trusting this CA (the server's test CA)")
    parser.add_argument("--http3", action="store_true", help="over HTTP/3 (needs --ca-file)")
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    tally = Tally()
    host = "127.0.0.1"
    tls = client_tls(args.ca_file)

    def factory(index: int) -> Subscriber:
        query = {} if args.first_key is None else {"key": key_name(args.first_key + index)}
        path = f"/v1/topics/{args.topic}/stream"
        if query:
            path += f"?{urlencode(query)}"
        if args.http3:
            return H3SseSubscriber(tally, host, args.port, path, args.ca_file)
        subscriber = SseSubscriber(tally, host, args.port, path)
        subscriber.tls = tls
        return subscriber

    async def catchup(command: dict[str, Any]) -> dict[str, Any]:
        return await catch_up(
            args.port,
            args.topic,
            str(command["since"]),
            int(command["expect"]),
            float(command["within"]),
        )

    await serve_subscribers(
        factory,
        tally,
        host,
        args.port,
        args.connections,
        args.concurrency,
        args.lifetime,
        extra={"catchup": catchup},
    )


if __name__ == "__main__":
    run_generator(main)
