"""The leader of a partition is killed under load: no acknowledged event is lost or repeated.

Publishers POST single unkeyed events while WebSocket and SSE subscribers follow the whole
topic; part-way through, the node leading the topic's unkeyed partition (where every one of
these events goes) is SIGKILLed (no controlled shutdown), then started again. A 201 must mean
the event is delivered to every subscriber exactly once, in publish order; a 503 is no
promise either way, but no event may ever arrive twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from service.topics import unkeyed_partition

from ..clients import SseStream, publish, sse, ws_recv, ws_recv_op, ws_send
from ..processes import HeraldProcess, KafkaCluster
from .progress import Progress

PARTITIONS = 3
PUBLISHERS = 4
EVENTS_EACH = 150
KILL_AFTER = 200  # acknowledged events before the leader of the events' partition is killed
RESTART_AFTER = 200  # further acknowledged events before that node starts again
WAIT_S = 60.0

Ident = tuple[int, int]  # (publisher, sequence number): what an event's data names
CREATOR: Ident = (-1, 0)  # the event whose publish creates the topic


@dataclass
class Tally:
    """What the publishers attempted and what Herald answered."""

    published: int = 0
    acked: dict[Ident, tuple[int, int]] = field(default_factory=dict)  # → (partition, offset)
    refused: list[Ident] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    finished: int = 0

    def done(self) -> bool:
        return self.finished == PUBLISHERS


@dataclass
class Subscriber:
    """What one connection received, in order of arrival."""

    name: str
    received: list[Ident] = field(default_factory=list)
    seen: set[Ident] = field(default_factory=set)
    unexpected: list[str] = field(default_factory=list)

    def add(self, data: Any) -> None:
        ident = (data["publisher"], data["seq"])
        if ident != CREATOR:  # arrives only if it was consumed after the subscription
            self.received.append(ident)
            self.seen.add(ident)


async def publish_events(
    client: httpx.AsyncClient, topic: str, publisher: int, tally: Tally, progress: Progress
) -> None:
    for seq in range(EVENTS_EACH):
        tally.published += 1
        body = {"data": {"publisher": publisher, "seq": seq}}
        try:
            response = await client.post(f"/v1/topics/{topic}/events", json=body)
        except httpx.HTTPError as exc:
            tally.other.append(f"{publisher}/{seq}: {exc!r}")
        else:
            if response.status_code == 201:
                [event] = response.json()["events"]
                tally.acked[(publisher, seq)] = (event["partition"], int(event["offset"]))
            elif response.status_code == 503:
                tally.refused.append((publisher, seq))
            else:
                tally.other.append(f"{publisher}/{seq}: {response.status_code} {response.text}")
        await progress.bump()
    tally.finished += 1
    await progress.bump()


async def read_ws(ws: ClientConnection, subscriber: Subscriber, progress: Progress) -> None:
    try:
        while True:
            message = await ws_recv(ws)
            if message["op"] == "event":
                subscriber.add(message["data"])
            elif message["op"] != "heartbeat":
                subscriber.unexpected.append(repr(message))
            await progress.bump()
    except ConnectionClosed as exc:
        subscriber.unexpected.append(repr(exc))
        await progress.bump()


async def read_sse(stream: SseStream, subscriber: Subscriber, progress: Progress) -> None:
    try:
        while True:
            message = await stream.next_event()
            if message.event in (None, "message"):
                subscriber.add(message.json()["data"])
            else:
                subscriber.unexpected.append(f"{message.event}: {message.data}")
            await progress.bump()
    except (EOFError, httpx.HTTPError) as exc:
        subscriber.unexpected.append(repr(exc))
        await progress.bump()


async def fail_over(
    cluster: KafkaCluster, topic: str, tally: Tally, progress: Progress, log: list[str]
) -> int:
    """Kill the leader of the events' partition after KILL_AFTER acks; start it again
    RESTART_AFTER later."""
    await progress.until(lambda: len(tally.acked) >= KILL_AFTER or tally.done(), WAIT_S)
    partition = unkeyed_partition(topic, PARTITIONS)
    leader = await cluster.leader(topic, partition)
    cluster.kill(leader)
    killed_at, started = len(tally.acked), time.monotonic()
    log.append(f"killed node {leader} (leader of partition {partition}) after {killed_at} acks")
    await progress.until(lambda: len(tally.acked) >= killed_at + RESTART_AFTER or tally.done(), 120)
    log.append(
        f"restarting node {leader} after {len(tally.acked)} acks, "
        f"{time.monotonic() - started:.1f}s after the kill"
    )
    await asyncio.to_thread(cluster.start, leader)
    log.append(f"node {leader} ready again {time.monotonic() - started:.1f}s after the kill")
    return killed_at


async def records_in(bootstrap: str, topic: str) -> int:
    """How many records Kafka holds in ``topic`` (offsets are dense: no transactions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()
    return sum(ends.values())


async def wait_quietly(progress: Progress, predicate: Callable[[], bool], within: float) -> None:
    """Await ``predicate``; on timeout carry on, so the assertions report what is missing."""
    with contextlib.suppress(TimeoutError):
        await progress.until(predicate, within)


def out_of_order(subscriber: Subscriber, acked: dict[Ident, tuple[int, int]]) -> int:
    """Acknowledged events that arrived after a later offset of the same partition."""
    last: dict[int, int] = {}
    late = 0
    for ident in subscriber.received:
        if ident not in acked:
            continue
        partition, offset = acked[ident]
        if offset <= last.get(partition, -1):
            late += 1
        last[partition] = max(offset, last.get(partition, -1))
    return late


@pytest.mark.timeout(300)
async def test_killing_a_partition_leader_loses_and_repeats_no_acknowledged_event(
    cluster: KafkaCluster, herald: HeraldProcess, topic: str
) -> None:
    began = time.monotonic()
    await publish(herald.base_url, topic, {"data": {"publisher": CREATOR[0], "seq": CREATOR[1]}})
    progress, tally = Progress(), Tally()
    log: list[str] = []
    subscribers = [Subscriber(f"ws-{i}") for i in range(3)] + [
        Subscriber(f"sse-{i}") for i in range(2)
    ]
    async with AsyncExitStack() as stack:
        readers: list[asyncio.Task[None]] = []
        for subscriber in subscribers[:3]:
            ws = await stack.enter_async_context(
                connect(f"{herald.ws_url}/v1/ws", subprotocols=["herald.v1.json"])  # type: ignore[list-item]
            )
            await ws_send(ws, {"op": "subscribe", "topic": topic})
            await ws_recv_op(ws, "subscribed")
            readers.append(asyncio.create_task(read_ws(ws, subscriber, progress)))
        for subscriber in subscribers[3:]:
            stream = await stack.enter_async_context(
                sse(herald.base_url, f"/v1/topics/{topic}/stream")
            )
            readers.append(asyncio.create_task(read_sse(stream, subscriber, progress)))
        # Registered last, so it runs first: readers stop before their connections close.
        stack.push_async_callback(_cancel, readers)
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=herald.base_url, timeout=30)
        )

        async with asyncio.TaskGroup() as group:
            fault = group.create_task(fail_over(cluster, topic, tally, progress, log))
            for publisher in range(PUBLISHERS):
                group.create_task(publish_events(client, topic, publisher, tally, progress))
        killed_at = fault.result()
        published_s = time.monotonic() - began

        acked = set(tally.acked)
        await wait_quietly(progress, lambda: all(acked <= s.seen for s in subscribers), WAIT_S)
        # Refused events may still have reached Kafka: every record there must arrive once.
        written = await records_in(cluster.bootstrap, topic) - 1
        await wait_quietly(progress, lambda: all(len(s.seen) >= written for s in subscribers), 30)
        written = await records_in(cluster.bootstrap, topic) - 1

    after_kill = list(tally.acked.values())[killed_at:]
    target = unkeyed_partition(topic, PARTITIONS)
    # Unkeyed events all go to one partition: the one whose leader was killed.
    assert {partition for partition, _ in tally.acked.values()} <= {target}
    acks_after_kill = len(after_kill)
    positions = Counter(tally.acked.values())
    report = [
        *log,
        f"published {tally.published}, acknowledged {len(acked)}, refused {len(tally.refused)}, "
        f"other {len(tally.other)}; records in Kafka {written}; "
        f"acks after the kill {acks_after_kill}",
    ]
    for s in subscribers:
        duplicated = sum(count - 1 for count in Counter(s.received).values())
        report.append(
            f"{s.name}: delivered {len(s.received)} ({len(s.seen)} distinct), "
            f"lost {len(acked - s.seen)}, duplicated {duplicated}, "
            f"out of order {out_of_order(s, tally.acked)}, "
            f"refused but delivered {len(s.seen.intersection(tally.refused))}, "
            f"unexpected {s.unexpected[:3]}"
        )
    report.append(f"took {time.monotonic() - began:.1f}s (publishing {published_s:.1f}s)")
    summary = "\n".join(report)
    print("\n" + summary)

    assert tally.other == [], f"answers other than 201 and 503: {tally.other[:5]}\n{summary}"
    assert len(tally.acked) + len(tally.refused) == tally.published, summary
    assert [p for p, count in positions.items() if count > 1] == [], (
        f"two acknowledged events at one offset\n{summary}"
    )
    assert acks_after_kill > 0, f"the partition never accepted writes again\n{summary}"
    assert len(acked) <= written <= tally.published, summary
    for s in subscribers:
        assert s.unexpected == [], f"{s.name} got unexpected messages\n{summary}"
        assert acked <= s.seen, f"{s.name} lost {sorted(acked - s.seen)[:10]}\n{summary}"
        assert len(s.received) == len(s.seen), f"{s.name} got duplicates\n{summary}"
        assert len(s.seen) == written, f"{s.name} missed records Kafka holds\n{summary}"
        assert out_of_order(s, tally.acked) == 0, f"{s.name} out of partition order\n{summary}"


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
