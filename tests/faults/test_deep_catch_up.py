"""A client resuming 100 000 events back (far beyond the ring) receives them all, in order.

The cursor is taken before the history is written: a whole-topic SSE subscriber sees the
topic's first event and keeps its id. Then WRITERS publishers post HISTORY events in batches
of BATCH, each writer its own key with consecutive sequence numbers. Once Herald has consumed
them, a client resumes from the kept id: the ring (1000 events) does not reach back that far,
so Herald reads Kafka. While it catches up, a trickle of live events keeps arriving, and a few
more follow once it has; they must follow the history with no gap or duplicate at the
hand-over. Checked per key (sequence numbers 0, 1, 2, ... with none missing or repeated) and
per id (from the kept cursor on, every id is exactly one record past the one before).

The same is then done over a WebSocket speaking herald.v1.msgpack. The catch-up rate (events
per second from connecting to the last historic event) is printed for both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from service.cursor import Cursor

from ..clients import sse, ws_recv, ws_recv_op, ws_send
from ..processes import HeraldProcess
from .progress import CursorSteps, Progress, end_offsets

PARTITIONS = 3
HISTORY = 100_000
BATCH = 100  # events per POST (Herald's default maximum)
WRITERS = 4  # POSTs in flight at once, each writer posting its own key
LIVE = "live"  # the key of the events published while and after a client catches up
LIVE_PACE_S = 0.05  # the trickle's pause between posts: a steady rate, not synchronisation
LIVE_AFTER = 10  # live events published once the client has every historic one
CATCH_UP_S = 180.0  # at most, for one client to receive the history


@pytest.fixture
async def instance(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[HeraldProcess]:
    """One Herald with the default ring (1000 events) on the session broker; always stopped."""
    server = HeraldProcess(
        kafka_bootstrap,
        tmp_path / "herald.log",
        topics="it-.*",
        topic_partitions=str(PARTITIONS),
        sse_heartbeat_s="2",
    )
    try:
        server.start()
        await server.wait_ready()
        yield server
    finally:
        server.stop()


@dataclass
class Reader:
    """What one resuming client received, in order of arrival."""

    name: str
    steps: CursorSteps
    by_key: dict[str, list[int]] = field(default_factory=dict)  # key → seqs in arrival order
    historic: int = 0
    received: int = 0
    live_published: int = 0  # live events published by the end of this client's turn
    connected_at: float | None = None
    first_at: float | None = None
    caught_up_at: float | None = None
    unexpected: list[str] = field(default_factory=list)

    def add(self, event_id: str, key: str | None, data: Any) -> bool:
        """Record one event; True when the test should look (not after every event)."""
        self.steps.add(event_id)
        self.received += 1
        self.by_key.setdefault(str(key), []).append(data["s"])
        if self.first_at is None:
            self.first_at = time.monotonic()
        if key == LIVE:
            return True
        self.historic += 1
        if self.historic == HISTORY:
            self.caught_up_at = time.monotonic()
        return self.historic % 1000 == 0

    def problems(self, published: dict[str, int]) -> list[str]:
        """Per key: which sequence numbers are missing, repeated or out of order."""
        found = []
        for key in sorted(published.keys() | self.by_key.keys()):
            seqs = self.by_key.get(key, [])
            if seqs != list(range(published.get(key, 0))):
                distinct = set(seqs)
                found.append(
                    f"key {key}: {len(seqs)} received, {len(distinct)} distinct, "
                    f"{published.get(key, 0) - len(distinct)} missing, "
                    f"first difference at {_first_difference(seqs)}"
                )
        return found


def _first_difference(seqs: list[int]) -> str:
    for expected, got in enumerate(seqs):
        if got != expected:
            return f"position {expected}: {seqs[max(0, expected - 2) : expected + 3]}"
    return "the end (too few)"


async def first_id(server: HeraldProcess, topic: str) -> str:
    """Create the topic with its first event and return the id a whole-topic subscriber saw."""
    async with sse(server.base_url, f"/v1/topics/{topic}/stream") as stream:
        await post(server.base_url, topic, [{"key": "first", "data": {"s": 0}}], "first")
        event = await stream.next_event()
    assert event.id is not None and event.json()["data"] == {"s": 0}, event
    return event.id


async def post(
    base_url: str,
    topic: str,
    events: list[dict[str, Any]],
    idempotency_key: str,
    client: httpx.AsyncClient | None = None,
) -> None:
    """Publish a batch; a 503 or a lost answer is retried under the same Idempotency-Key."""
    async with AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, timeout=30)
            )
        for _ in range(5):
            try:
                response = await client.post(
                    f"/v1/topics/{topic}/events",
                    json=events,
                    headers={"Idempotency-Key": idempotency_key},
                )
            except httpx.TransportError:
                continue
            if response.status_code == 201:
                assert len(response.json()["events"]) == len(events)
                return
            assert response.status_code == 503, response.text
            await asyncio.sleep(0.5)  # back off before asking again
        raise AssertionError(f"{idempotency_key}: not acknowledged after 5 attempts")


async def write_history(server: HeraldProcess, topic: str) -> None:
    """HISTORY events, WRITERS batches in flight at once; writer w's key is ``w<w>``."""
    each = HISTORY // WRITERS

    async def writer(number: int, client: httpx.AsyncClient) -> None:
        key = f"w{number}"
        for start in range(0, each, BATCH):
            batch = [{"key": key, "data": {"s": s}} for s in range(start, start + BATCH)]
            await post(server.base_url, topic, batch, f"{key}/{start}", client)

    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
        asyncio.TaskGroup() as group,
    ):
        for number in range(WRITERS):
            group.create_task(writer(number, client))


async def consumed(server: HeraldProcess, topic: str, ends: dict[int, int]) -> None:
    """Poll the snapshot until Herald's head reaches ``ends`` (another process: no event)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        async with asyncio.timeout(120):
            while True:
                response = await client.get(f"/v1/topics/{topic}/snapshot", params={"limit": 1})
                assert response.status_code == 200, response.text
                head = Cursor.decode(topic, response.json()["cursor"]).as_dict()
                if all(head.get(p, 0) >= end for p, end in ends.items()):
                    return
                await asyncio.sleep(0.1)


@dataclass
class Trickle:
    """Live events: one at a time, paced, until told to stop; seqs continue across clients."""

    server: HeraldProcess
    topic: str
    published: int = 0
    stop: bool = False

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=30) as client:
            while not self.stop:
                await self.one(client)
                await asyncio.sleep(LIVE_PACE_S)

    async def one(self, client: httpx.AsyncClient | None = None) -> None:
        seq = self.published
        batch = [{"key": LIVE, "data": {"s": seq}}]
        await post(self.server.base_url, self.topic, batch, f"{LIVE}/{seq}", client)
        self.published += 1


async def read_sse(
    reader: Reader, server: HeraldProcess, topic: str, since: str, progress: Progress
) -> None:
    path = f"/v1/topics/{topic}/stream"
    try:
        async with sse(server.base_url, path, {"Last-Event-ID": since}) as stream:
            reader.connected_at = time.monotonic()
            while True:
                message = await stream.next_event()
                if message.event not in (None, "message"):
                    reader.unexpected.append(f"{message.event}: {message.data}"[:300])
                    await progress.bump()
                    continue
                event = message.json()
                if reader.add(event["id"], event["key"], event["data"]):
                    await progress.bump()
    except Exception as exc:  # noqa: BLE001 - recorded and asserted on
        reader.unexpected.append(repr(exc)[:300])
        await progress.bump()


async def read_ws(
    reader: Reader, server: HeraldProcess, topic: str, since: str, progress: Progress
) -> None:
    try:
        async with connect(f"{server.ws_url}/v1/ws", subprotocols=["herald.v1.msgpack"]) as ws:  # type: ignore[list-item]
            await ws_send(ws, {"op": "subscribe", "topic": topic, "since": since})
            subscribed = await ws_recv_op(ws, "subscribed")
            reader.connected_at = time.monotonic()
            if not subscribed["recovered"]:
                reader.unexpected.append(repr(subscribed))
            while True:
                message = await ws_recv(ws)
                if message["op"] == "event":
                    if reader.add(message["id"], message["key"], message["data"]):
                        await progress.bump()
                elif message["op"] != "heartbeat":
                    reader.unexpected.append(repr(message)[:300])
                    await progress.bump()
    except Exception as exc:  # noqa: BLE001 - recorded and asserted on
        reader.unexpected.append(repr(exc)[:300])
        await progress.bump()


Read = Callable[[Reader, HeraldProcess, str, str, Progress], Coroutine[Any, Any, None]]


async def catch_up(
    server: HeraldProcess, topic: str, since: str, name: str, read: Read, trickle: Trickle
) -> tuple[Reader, str]:
    """One client resumes from ``since`` while live events arrive; returns what it got."""
    progress = Progress()
    reader = Reader(name, CursorSteps(topic))
    reader.steps.add(since)  # so the first event must be the very next record
    began = time.monotonic()
    async with AsyncExitStack() as stack:
        task = asyncio.create_task(read(reader, server, topic, since, progress))
        stack.push_async_callback(_cancel, [task])
        trickle.stop = False
        trickling = asyncio.create_task(trickle.run())
        stack.push_async_callback(_cancel, [trickling])
        await progress.quietly(lambda: reader.historic >= HISTORY or task.done(), CATCH_UP_S)
        trickle.stop = True
        await trickling
        for _ in range(LIVE_AFTER):  # after the hand-over: these come from the live stream
            await trickle.one()
        reader.live_published = trickle.published
        await progress.quietly(
            lambda: reader.received >= HISTORY + reader.live_published or task.done(), 30
        )
    connected = (reader.connected_at or began) - began
    if reader.caught_up_at is not None and reader.connected_at is not None:
        took = reader.caught_up_at - reader.connected_at
        rate = f"{HISTORY / took:,.0f} events/s ({HISTORY} in {took:.1f}s)"
    else:
        rate = "did not catch up"
    line = (
        f"{name}: catch-up {rate}, connected after {connected * 1000:.0f}ms; received "
        f"{reader.received} ({reader.historic} historic, {reader.received - reader.historic} "
        f"live of {trickle.published} published so far), {reader.steps.summary()}, "
        f"unexpected {reader.unexpected[:3]}"
    )
    return reader, line


@pytest.mark.timeout(600)
async def test_a_client_resuming_100000_events_back_receives_them_all_in_order(
    instance: HeraldProcess, kafka_bootstrap: str, topic: str
) -> None:
    began = time.monotonic()
    since = await first_id(instance, topic)
    await write_history(instance, topic)
    written_s = time.monotonic() - began
    ends = await end_offsets(kafka_bootstrap, topic, PARTITIONS)
    await consumed(instance, topic, ends)
    report = [
        f"history: {sum(ends.values()) - 1} records written in {written_s:.1f}s "
        f"({HISTORY / written_s:,.0f} events/s), consumed by Herald after "
        f"{time.monotonic() - began:.1f}s; ends {ends}"
    ]

    trickle = Trickle(instance, topic)
    readers: list[Reader] = []
    for name, read in (("sse", read_sse), ("ws-msgpack", read_ws)):
        reader, line = await catch_up(instance, topic, since, name, read, trickle)
        readers.append(reader)
        report.append(line)
    report.append(f"log: {instance.log_path}")
    report.append(f"took {time.monotonic() - began:.1f}s")

    # A second copy of a retried batch is never delivered; only such copies may make an id
    # skip ahead (none are expected: retries happen only after a 503 or a lost answer).
    records = sum((await end_offsets(kafka_bootstrap, topic, PARTITIONS)).values()) - 1
    extra = records - HISTORY - trickle.published
    report.insert(-2, f"records in Kafka {records} ({extra} second copies)")
    problems = {}
    for reader in readers:
        published = {f"w{w}": HISTORY // WRITERS for w in range(WRITERS)}
        published[LIVE] = reader.live_published
        problems[reader.name] = reader.problems(published)
        expected = HISTORY + reader.live_published
        report.append(
            f"{reader.name}: published {expected} after the cursor, delivered "
            f"{reader.received}, problems {problems[reader.name][:4] or 'none'}"
        )
    summary = "\n".join(report)
    print("\n" + summary)

    for reader in readers:
        assert reader.unexpected == [], f"{reader.name} got unexpected messages\n{summary}"
        assert reader.historic == HISTORY, f"{reader.name} did not catch up\n{summary}"
        assert problems[reader.name] == [], f"{reader.name} lost, repeated or reordered\n{summary}"
        assert reader.received == HISTORY + reader.live_published, summary
        steps = reader.steps
        assert steps.regressions == 0, f"{reader.name}: an id went backwards\n{summary}"
        assert steps.stalls == 0, f"{reader.name}: an id did not advance\n{summary}"
        assert steps.jumps <= extra, f"{reader.name}: ids skipped records\n{summary}"


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
