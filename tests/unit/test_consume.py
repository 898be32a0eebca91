"""service/consume.py over the in-memory Kafka: positions, new topics, and topic lookups that
never hold deliveries up (a real broker: tests/integration/test_consume.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from service.broadcaster import Broadcasters
from service.config import Settings
from service.consume import Feed
from service.kafka import Admin, Consumer, Record, TopicPartition
from service.kafka.memory import MemoryConsumer, MemoryKafka, MemoryLog
from service.metrics import Metrics
from service.outbox import Outbox
from service.topics import TopicPolicy
from service.wire import Format

from ..waiting import eventually
from .test_kafka import cancel_of_its_own

TOPIC = "orders"


class HangingAdmin:
    """Answers the first lookup; every later one never answers (a slow cluster)."""

    def __init__(self, inner: Admin) -> None:
        self._inner = inner
        self.lookups = 0
        self.hanging = asyncio.Event()

    async def start(self) -> None:
        await self._inner.start()

    async def close(self) -> None:
        await self._inner.close()

    async def partition_counts(
        self, topics: Sequence[str] | None = None, *, with_leaders: bool = False
    ) -> dict[str, int]:
        self.lookups += 1
        if self.lookups > 1:
            self.hanging.set()
            await asyncio.Event().wait()
        return await self._inner.partition_counts(topics, with_leaders=with_leaders)

    async def create_topic(self, topic: str, partitions: int, replication: int) -> None:
        await self._inner.create_topic(topic, partitions, replication)


class HangingKafka(MemoryKafka):
    def __init__(self, log: MemoryLog) -> None:
        super().__init__(log)
        self.admins: list[HangingAdmin] = []

    def admin(self, client_id: str) -> Admin:
        admin = HangingAdmin(super().admin(client_id))
        self.admins.append(admin)
        return admin


async def connection_lost() -> None:
    raise KafkaConnectionError("Connection at 127.0.0.1:9092 closed")


async def a_bug() -> None:
    raise RuntimeError("a fault nobody foresaw")


class LeakyConsumer(MemoryConsumer):
    """Its ``stop()`` raises a cancel of its own, as aiokafka's can; once its reads ``fail``
    (or the lag probe's questions, ``fail_lag_probe``), they raise what that raises."""

    fail: Callable[[], Awaitable[None]] | None = None
    fail_lag_probe: Callable[[], Awaitable[None]] | None = None

    async def end_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        if self.fail_lag_probe is not None and self._started:
            await self.fail_lag_probe()
        return await super().end_offsets(partitions)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        if self.fail is not None:
            await self.fail()
        return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)

    async def stop(self) -> None:
        await super().stop()
        await cancel_of_its_own()


class LeakyKafka(MemoryKafka):
    def __init__(self, log: MemoryLog) -> None:
        super().__init__(log)
        self.consumers: list[LeakyConsumer] = []

    def consumer(self, client_id: str, **options: Any) -> Consumer:
        consumer = LeakyConsumer(self.log, options.get("fetch_max_wait_ms") or 500)
        self.consumers.append(consumer)
        return consumer


@pytest.fixture
def log() -> MemoryLog:
    log = MemoryLog()
    log.create(TOPIC, 2)
    return log


async def running(feed: Feed) -> AsyncIterator[Feed]:
    await feed.start()
    try:
        async with asyncio.timeout(10):
            await feed.positioned.wait()
        yield feed
    finally:
        await feed.stop()


async def offsets_delivered(outbox: Outbox, count: int) -> list[int]:
    got: list[int] = []
    async with asyncio.timeout(10):
        while len(got) < count:
            if not outbox.ready:
                await outbox.wait()
            got += [event.offset for event in outbox.drain_events()]
    return got


async def test_events_flow_while_a_topic_lookup_hangs(log: MemoryLog) -> None:
    # A lookup may take up to publish_timeout_s: here longer than the test waits.
    settings = Settings(topic_refresh_s=0.0, fan_out_pause=0, publish_timeout_s=3600.0)
    kafka = HangingKafka(log)
    broadcasters = Broadcasters(settings)
    feed = Feed(settings, kafka, TopicPolicy(settings), broadcasters, Metrics())
    outbox = Outbox(Format.JSON, 100)
    async for _ in running(feed):
        broadcasters.get(TOPIC).subscribe(outbox, None)
        await kafka.admins[0].hanging.wait()  # the next lookup is under way, and stays so
        for n in range(3):
            log.append(TOPIC, b'{"n":%d}' % n, None, 0, [])
        assert await offsets_delivered(outbox, 3) == [0, 1, 2]


async def test_a_starting_instance_reads_back_a_rings_worth_and_then_follows(
    log: MemoryLog,
) -> None:
    for n in range(5):
        log.append(TOPIC, b"%d" % n, None, 1, [])
    settings = Settings(topic_refresh_s=0.01, ring_size=2, fan_out_pause=0)
    broadcasters = Broadcasters(settings)
    feed = Feed(settings, MemoryKafka(log), TopicPolicy(settings), broadcasters, Metrics())
    async for _ in running(feed):
        broadcaster = broadcasters.get(TOPIC)
        assert [event.offset for event in broadcaster.ring] == [3, 4]
        assert broadcaster.positions == {0: 0, 1: 5}
        outbox = Outbox(Format.JSON, 100)
        broadcaster.subscribe(outbox, None)
        log.append(TOPIC, b"5", None, 1, [])
        assert await offsets_delivered(outbox, 1) == [5]


async def test_a_topic_created_while_running_is_read_from_its_first_record() -> None:
    log = MemoryLog()
    settings = Settings(topic_refresh_s=0.01, fan_out_pause=0)
    broadcasters = Broadcasters(settings)
    feed = Feed(settings, MemoryKafka(log), TopicPolicy(settings), broadcasters, Metrics())
    async for _ in running(feed):
        # A client subscribed before the topic existed gets its first event.
        outbox = Outbox(Format.JSON, 100)
        broadcasters.get("fresh").subscribe(outbox, None)
        log.create("fresh", 1)
        log.append("fresh", b"1", None, 0, [])
        assert await offsets_delivered(outbox, 1) == [0]


async def test_an_unreachable_cluster_is_reported_and_reading_resumes_after_it(
    log: MemoryLog,
) -> None:
    settings = Settings(topic_refresh_s=0.01, fan_out_pause=0)
    broadcasters = Broadcasters(settings)
    feed = Feed(settings, MemoryKafka(log), TopicPolicy(settings), broadcasters, Metrics())
    async for _ in running(feed):
        assert feed.kafka_reachable
        outbox = Outbox(Format.JSON, 100)
        broadcasters.get(TOPIC).subscribe(outbox, None)
        log.reachable = False
        await eventually(lambda: not feed.kafka_reachable)
        log.append(TOPIC, b"1", None, 0, [])
        log.reachable = True
        assert await offsets_delivered(outbox, 1) == [0]
        await eventually(lambda: feed.kafka_reachable)


@pytest.mark.parametrize("failure", [connection_lost, cancel_of_its_own, a_bug])
async def test_reading_resumes_with_fresh_clients_whatever_ended_the_last_ones(
    log: MemoryLog, failure: Callable[[], Awaitable[None]]
) -> None:
    # Seen on a real broker restarted under a running instance: the consumer's stop() after
    # the failure raised CancelledError, which ended the loop, and the instance never became
    # ready again (tests/integration/test_kafka_outage.py, now and then). Every consumer here
    # raises that on stop(); the first one's reads fail in each way the loop must outlive.
    settings = Settings(topic_refresh_s=0.01, fan_out_pause=0)
    broadcasters = Broadcasters(settings)
    kafka = LeakyKafka(log)
    feed = Feed(settings, kafka, TopicPolicy(settings), broadcasters, Metrics())
    async for _ in running(feed):
        outbox = Outbox(Format.JSON, 100)
        broadcasters.get(TOPIC).subscribe(outbox, None)
        kafka.consumers[0].fail = failure
        await eventually(lambda: len(kafka.consumers) == 2)  # a fresh consumer, a second later
        log.append(TOPIC, b"1", None, 0, [])
        assert await offsets_delivered(outbox, 1) == [0]


async def test_a_lag_probe_that_ends_unexpectedly_makes_the_loop_start_afresh(
    log: MemoryLog,
) -> None:
    # Else the lag figures (and readiness on lag) would freeze at their last value, unsaid.
    settings = Settings(topic_refresh_s=0.01, fan_out_pause=0)
    kafka = LeakyKafka(log)
    feed = Feed(settings, kafka, TopicPolicy(settings), Broadcasters(settings), Metrics())
    async for _ in running(feed):
        kafka.consumers[0].fail_lag_probe = cancel_of_its_own
        await eventually(lambda: len(kafka.consumers) == 2)
