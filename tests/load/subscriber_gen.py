"""The shared body of the subscriber generators (gen_ws, gen_sse).

Opens its connections with bounded concurrency, reports ``ready`` once every subscription is
confirmed by the server, then answers:

- ``measure``: reopen connections the server closed, forget counts and latencies so far;
  answers ``measuring``;
- ``drain {expect, within}``: wait until ``expect`` events arrived since ``measure`` (or
  ``within`` seconds passed); answers ``drained`` with the counts and latency histogram;
- ``stats``: answers ``stats`` with the same, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from .control import Handler, emit, process_cpu_s, raise_fd_limit, serve_commands, uses_uvloop
from .subscribers import Subscriber
from .tally import Tally

CONNECT_TIMEOUT_S = 30.0
# A drain with some connections closed ends when the others heard nothing for this long.
QUIET_S = 5.0


async def connect(subscriber: Subscriber, host: str, port: int) -> None:
    """Connect ``subscriber`` and wait until the server confirmed its subscription."""
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        await subscriber.open(host, port)
        await subscriber.ready


async def open_subscribers(
    factory: Callable[[int], Subscriber],
    host: str,
    port: int,
    indices: list[int],
    concurrency: int,
) -> tuple[dict[int, Subscriber], list[str]]:
    """Open a subscriber per index, ``concurrency`` handshakes at a time; one retry each."""
    gate = asyncio.Semaphore(concurrency)
    opened: dict[int, Subscriber] = {}
    failures: list[str] = []

    async def one(index: int) -> None:
        async with gate:
            for attempt in (1, 2):
                subscriber = factory(index)
                try:
                    await connect(subscriber, host, port)
                except (OSError, TimeoutError) as exc:
                    subscriber.close()
                    if attempt == 2:
                        failures.append(f"{index}: {exc!r}")
                else:
                    opened[index] = subscriber
                    return

    await asyncio.gather(*(one(index) for index in indices))
    return opened, failures


async def serve_subscribers(
    factory: Callable[[int], Subscriber],
    tally: Tally,
    host: str,
    port: int,
    count: int,
    concurrency: int,
    lifetime_s: float,
    extra: dict[str, Handler] | None = None,
) -> None:
    started = time.monotonic()
    subscribers, failures = await open_subscribers(
        factory, host, port, list(range(count)), concurrency
    )
    emit(
        {
            "event": "ready",
            "connected": len(subscribers),
            "failed": len(failures),
            "failures": failures[:5],
            "connect_s": time.monotonic() - started,
            "fd_limit": raise_fd_limit(),
            "uvloop": uses_uvloop(),
        }
    )

    cpu_at_measure = process_cpu_s()

    def report(event: str, **more: Any) -> dict[str, Any]:
        # cpu_s: this generator's own CPU time since ``measure``.
        cpu_s = process_cpu_s() - cpu_at_measure
        return {"event": event, "cpu_s": cpu_s, **tally.report(), **more}

    async def measure(command: dict[str, Any]) -> dict[str, Any]:
        """Reopen what the server closed (as a client would), then start counting afresh."""
        nonlocal cpu_at_measure
        lost = [index for index in range(count) if subscribers[index].closed.done()]
        reopened, failures = await open_subscribers(factory, host, port, lost, concurrency)
        subscribers.update(reopened)
        tally.reset()
        cpu_at_measure = process_cpu_s()
        return {"event": "measuring", "reopened": len(reopened), "failed": failures[:5]}

    async def drain(command: dict[str, Any]) -> dict[str, Any]:
        tally.expect(int(command["expect"]))
        deadline = time.monotonic() + float(command["within"])
        seen = -1
        while not tally.reached.is_set() and time.monotonic() < deadline:
            # Nothing more can arrive once the server closed every connection, or closed
            # some and the others went quiet.
            if tally.all_closed.is_set() or (tally.closed_since_reset and seen == tally.events):
                break
            seen = tally.events
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    tally.reached.wait(), min(QUIET_S, deadline - time.monotonic())
                )
        return report("drained", timed_out=not tally.reached.is_set())

    async def stats(command: dict[str, Any]) -> dict[str, Any]:
        return report("stats")

    handlers: dict[str, Handler] = {"measure": measure, "drain": drain, "stats": stats}
    handlers.update(extra or {})
    try:
        await serve_commands(handlers, lifetime_s)
    finally:
        for subscriber in subscribers.values():
            subscriber.close()
