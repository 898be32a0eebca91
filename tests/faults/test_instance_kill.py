"""One of two Herald instances is SIGKILLed mid-stream: its clients resume on the other.

Four WebSocket and two SSE clients follow a whole topic on instance A while four publishers
(one key each) post events at a steady rate, alternating between A and B, each event under its
own Idempotency-Key. Once every client has received KILL_AFTER events, A is SIGKILLed (no
goodbye) while a POST to it is under way. Each client notices its dead connection by itself
and resumes on B from the id of the last event it received (WebSocket ``subscribe`` with
``since``, SSE ``Last-Event-ID``); publishes that fail because A is gone are sent again to B
under the same Idempotency-Key, so a retry after an unknown outcome writes no second event.
Every acknowledged event must reach every client exactly once, in order per key, and each
client's ids must go on advancing across the switch as if it had never happened.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ..clients import publish, sse, ws_recv, ws_recv_op, ws_send
from ..processes import HeraldProcess
from .progress import CursorSteps, Progress, end_offsets

PARTITIONS = 3
PUBLISHERS = 4  # each posts its own key's events, one after another
EVENTS_EACH = 150
TOTAL = PUBLISHERS * EVENTS_EACH  # one event per POST
PACE_S = 0.02  # each publisher's pause between posts: a steady rate, not synchronisation
KILL_AFTER = 200  # events every client has received before A is killed
RETRIES = 5  # further attempts on B for a publish that A (or B) did not acknowledge
WS_CLIENTS, SSE_CLIENTS = 4, 2
WAIT_S = 60.0

Ident = tuple[int, int]  # (publisher, sequence number): what an event's data names
CREATOR: Ident = (-1, 0)  # the event whose publish creates the topic


@pytest.fixture
async def pair(
    kafka_bootstrap: str, tmp_path: Path
) -> AsyncIterator[tuple[HeraldProcess, HeraldProcess]]:
    """Instances A and B on their own ports against the session broker; both always stop."""
    settings = {
        "topics": "it-.*",
        "topic_partitions": str(PARTITIONS),
        "sse_heartbeat_s": "2",
    }
    a = HeraldProcess(kafka_bootstrap, tmp_path / "herald-a.log", **settings)
    b = HeraldProcess(kafka_bootstrap, tmp_path / "herald-b.log", **settings)
    try:
        a.start()
        b.start()
        await asyncio.gather(a.wait_ready(), b.wait_ready())
        yield a, b
    finally:
        a.stop()
        b.stop()


@dataclass
class Tally:
    """What the publishers attempted and what Herald answered."""

    published: int = 0
    acked: dict[Ident, tuple[int, int]] = field(default_factory=dict)  # → (partition, offset)
    retried: int = 0  # events that needed more than one attempt
    unknown: list[Ident] = field(default_factory=list)  # sent, but the answer never came
    failed: list[str] = field(default_factory=list)
    posting_to_a: int = 0  # POSTs to A under way (the kill waits for one)
    killed_at: int | None = None  # events published when A was killed
    finished: int = 0

    def done(self) -> bool:
        return self.finished == PUBLISHERS


@dataclass
class Client:
    """What one client received, in order of arrival, across its connections."""

    name: str
    steps: CursorSteps
    received: list[Ident] = field(default_factory=list)
    by_key: dict[str, list[int]] = field(default_factory=dict)  # key → seqs in arrival order
    last_id: str | None = None
    instance: str | None = None  # where it is subscribed now
    received_on: dict[str, int] = field(default_factory=dict)
    resumed_from: str | None = None
    recovered: list[bool] = field(default_factory=list)
    breaks: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def add(self, event_id: str, key: str | None, data: Any) -> None:
        self.steps.add(event_id)
        self.last_id = event_id
        ident = (data["publisher"], data["seq"])
        if ident == CREATOR:  # arrives only if consumed after the subscription
            return
        assert self.instance is not None
        self.received_on[self.instance] = self.received_on.get(self.instance, 0) + 1
        self.received.append(ident)
        self.by_key.setdefault(str(key), []).append(ident[1])

    def subscribed(self, instance: str) -> None:
        if self.instance is not None:
            self.resumed_from = self.last_id
        self.instance = instance


async def publish_events(
    a: httpx.AsyncClient,
    b: httpx.AsyncClient,
    topic: str,
    publisher: int,
    tally: Tally,
    progress: Progress,
) -> None:
    """Post one key's events, alternating A and B; what A does not answer goes to B."""
    for seq in range(EVENTS_EACH):
        ident = (publisher, seq)
        body = {"key": f"k{publisher}", "data": {"publisher": publisher, "seq": seq}}
        headers = {"Idempotency-Key": f"{topic}/{publisher}/{seq}"}
        tally.published += 1
        targets = [("A", a) if seq % 2 == publisher % 2 else ("B", b)] + [("B", b)] * RETRIES
        for attempt, (name, client) in enumerate(targets):
            if attempt == 1:
                tally.retried += 1
            to_a = int(name == "A")
            tally.posting_to_a += to_a
            await progress.bump()
            try:
                response = await client.post(
                    f"/v1/topics/{topic}/events", json=body, headers=headers
                )
            except httpx.ConnectError:
                continue  # nothing was sent: A is gone
            except httpx.TransportError:
                tally.unknown.append(ident)
                continue
            finally:
                tally.posting_to_a -= to_a
            if response.status_code == 201:
                [event] = response.json()["events"]
                tally.acked[ident] = (event["partition"], int(event["offset"]))
                break
            if response.status_code != 503:
                tally.failed.append(f"{ident} on {name}: {response.status_code} {response.text}")
                break
            await asyncio.sleep(0.2)  # back off before asking again
        else:
            tally.failed.append(f"{ident}: no answer after {len(targets)} attempts")
        await progress.bump()
        await asyncio.sleep(PACE_S)
    tally.finished += 1
    await progress.bump()


def _ended(client: Client, instance: str, exc: BaseException) -> None:
    expected = isinstance(exc, ConnectionClosed | OSError | EOFError | httpx.TransportError)
    (client.breaks if expected else client.unexpected).append(f"{instance}: {exc!r}"[:300])


async def follow_ws(
    client: Client, instances: list[tuple[str, HeraldProcess]], topic: str, progress: Progress
) -> None:
    """Subscribe on each instance in turn, from the last id received, until its end."""
    for name, server in instances:
        subscribe = {"op": "subscribe", "topic": topic}
        if client.last_id is not None:
            subscribe["since"] = client.last_id
        try:
            async with connect(f"{server.ws_url}/v1/ws", subprotocols=["herald.v1.json"]) as ws:  # type: ignore[list-item]
                await ws_send(ws, subscribe)
                subscribed = await ws_recv_op(ws, "subscribed")
                client.recovered.append(subscribed["recovered"])
                client.subscribed(name)
                await progress.bump()
                while True:
                    message = await ws_recv(ws)
                    if message["op"] == "event":
                        client.add(message["id"], message["key"], message["data"])
                    elif message["op"] != "heartbeat":
                        client.unexpected.append(f"{name}: {message!r}"[:300])
                    await progress.bump()
        except Exception as exc:  # noqa: BLE001 - every ending is recorded and asserted on
            _ended(client, name, exc)
            await progress.bump()


async def follow_sse(
    client: Client, instances: list[tuple[str, HeraldProcess]], topic: str, progress: Progress
) -> None:
    """The same over Server-Sent Events: a reconnect sends Last-Event-ID, as EventSource does."""
    for name, server in instances:
        headers = {"Last-Event-ID": client.last_id} if client.last_id is not None else None
        try:
            async with sse(server.base_url, f"/v1/topics/{topic}/stream", headers) as stream:
                client.recovered.append(True)  # a reset would arrive as an event
                client.subscribed(name)
                await progress.bump()
                while True:
                    message = await stream.next_event()
                    if message.event in (None, "message"):
                        event = message.json()
                        assert message.id == event["id"], (message.id, event["id"])
                        client.add(event["id"], event["key"], event["data"])
                    else:
                        client.unexpected.append(f"{name}: {message.event} {message.data}"[:300])
                    await progress.bump()
        except Exception as exc:  # noqa: BLE001 - every ending is recorded and asserted on
            _ended(client, name, exc)
            await progress.bump()


async def kill_a(
    a: HeraldProcess, clients: list[Client], tally: Tally, progress: Progress, log: list[str]
) -> None:
    """SIGKILL A once every client has KILL_AFTER events, while a POST to A is under way.

    On a timeout it kills anyway: the assertions then say which client was stuck.
    """
    await progress.quietly(
        lambda: (
            (all(len(c.received) >= KILL_AFTER for c in clients) and tally.posting_to_a > 0)
            or tally.done()
        ),
        WAIT_S,
    )
    assert a.process is not None
    a.process.kill()
    tally.killed_at = tally.published
    log.append(
        f"killed A after {tally.published} publishes ({len(tally.acked)} acknowledged) "
        f"while {tally.posting_to_a} POSTs to A were under way; "
        f"clients had received {[len(c.received) for c in clients]}"
    )
    await asyncio.to_thread(a.process.wait)


def out_of_order(client: Client) -> int:
    """Events of a key that arrived after a later event of the same key."""
    return sum(
        1
        for seqs in client.by_key.values()
        for before, after in itertools.pairwise(seqs)
        if after <= before
    )


def _at(client: Client, ends: dict[int, int]) -> bool:
    last = client.steps.last or {}
    return all(last.get(p, 0) == end for p, end in ends.items())


@pytest.mark.timeout(240)
async def test_clients_of_a_killed_instance_resume_on_another_with_nothing_lost_or_repeated(
    pair: tuple[HeraldProcess, HeraldProcess], kafka_bootstrap: str, topic: str
) -> None:
    a, b = pair
    began = time.monotonic()
    await publish(a.base_url, topic, {"data": {"publisher": CREATOR[0], "seq": CREATOR[1]}})
    progress, tally = Progress(), Tally()
    log: list[str] = []
    clients = [Client(f"ws-{i}", CursorSteps(topic)) for i in range(WS_CLIENTS)] + [
        Client(f"sse-{i}", CursorSteps(topic)) for i in range(SSE_CLIENTS)
    ]
    instances = [("A", a), ("B", b)]
    async with AsyncExitStack() as stack:
        followers = [
            asyncio.create_task(
                (follow_ws if c.name.startswith("ws") else follow_sse)(
                    c, instances, topic, progress
                )
            )
            for c in clients
        ]
        stack.push_async_callback(_cancel, followers)
        subscribed = await progress.quietly(lambda: all(c.instance == "A" for c in clients), 30)
        assert subscribed, [(c.name, c.instance, c.breaks, c.unexpected) for c in clients]
        http_a = await stack.enter_async_context(httpx.AsyncClient(base_url=a.base_url, timeout=15))
        http_b = await stack.enter_async_context(httpx.AsyncClient(base_url=b.base_url, timeout=15))

        async with asyncio.TaskGroup() as group:
            group.create_task(kill_a(a, clients, tally, progress, log))
            for publisher in range(PUBLISHERS):
                group.create_task(publish_events(http_a, http_b, topic, publisher, tally, progress))
        published_s = time.monotonic() - began

        acked = set(tally.acked)
        await progress.quietly(
            lambda: all(c.instance == "B" and acked <= set(c.received) for c in clients), WAIT_S
        )
        ends = await end_offsets(kafka_bootstrap, topic, PARTITIONS)
        # Every record Kafka holds has passed once a client's last id is Kafka's end.
        await progress.quietly(lambda: all(_at(c, ends) for c in clients), 30)
        ends = await end_offsets(kafka_bootstrap, topic, PARTITIONS)

    records = sum(ends.values()) - 1  # without the creator
    report = [
        *log,
        f"published {tally.published}, acknowledged {len(acked)}, retried on B {tally.retried} "
        f"(outcome unknown {len(tally.unknown)}: {tally.unknown[:5]}), "
        f"failed {len(tally.failed)}; records in Kafka {records} (ends {ends})",
    ]
    for c in clients:
        seen = set(c.received)
        report.append(
            f"{c.name}: delivered {len(c.received)} ({c.received_on}, {len(seen)} distinct), "
            f"lost {len(acked - seen)}, duplicated {len(c.received) - len(seen)}, "
            f"out of key order {out_of_order(c)}, {c.steps.summary()}, "
            f"recovered {c.recovered}, breaks {c.breaks}, unexpected {c.unexpected[:3]}"
        )
    report.append(f"logs: {a.log_path}, {b.log_path}")
    report.append(f"took {time.monotonic() - began:.1f}s (publishing {published_s:.1f}s)")
    summary = "\n".join(report)
    print("\n" + summary)

    assert tally.failed == [], f"publishes not acknowledged\n{summary}"
    assert len(acked) == TOTAL, summary
    assert tally.killed_at is not None and tally.killed_at < TOTAL, f"killed too late\n{summary}"
    assert records <= TOTAL + len(tally.unknown), f"more second copies than retries\n{summary}"
    for c in clients:
        seen = set(c.received)
        assert c.unexpected == [], f"{c.name} got unexpected messages\n{summary}"
        assert len(c.breaks) == 1 and c.breaks[0].startswith("A:"), f"{c.name}\n{summary}"
        assert c.instance == "B" and c.resumed_from is not None, f"{c.name}\n{summary}"
        assert all(c.recovered), f"{c.name} resumed inexactly\n{summary}"
        assert acked <= seen, f"{c.name} lost {sorted(acked - seen)[:10]}\n{summary}"
        assert len(c.received) == len(seen), f"{c.name} got duplicates\n{summary}"
        assert out_of_order(c) == 0, f"{c.name} out of key order\n{summary}"
        assert c.steps.regressions == 0, f"{c.name}: an id went backwards\n{summary}"
        assert c.steps.stalls == 0, f"{c.name}: an id did not advance\n{summary}"
        # Only a record left undelivered (a second copy) may make an id skip ahead.
        assert c.steps.jumps <= records - len(seen), f"{c.name}: ids skipped\n{summary}"
        assert _at(c, ends), f"{c.name} did not reach Kafka's end {ends}\n{summary}"


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
