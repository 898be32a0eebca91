"""The consumer loop: topic lookups never hold deliveries up.

Kafka itself is covered by tests/integration/test_consume.py; here the clients are stand-ins
so that a lookup can be made to hang, which a real broker does not do on demand.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from service import tasks
from service.broadcaster import Broadcasters
from service.config import Settings
from service.consume import Feed
from service.metrics import Metrics
from service.outbox import Outbox
from service.topics import TopicPolicy
from service.wire import Format

TOPIC = "orders"
TP = TopicPartition(TOPIC, 0)


class HangingAdmin:
    """Finds the topic once; every later lookup never answers (a slow cluster)."""

    def __init__(self) -> None:
        self.lookups = 0
        self.hanging = asyncio.Event()

    async def describe_topics(self) -> list[dict[str, Any]]:
        self.lookups += 1
        if self.lookups > 1:
            self.hanging.set()
            await asyncio.Event().wait()
        return [{"topic": TOPIC, "error_code": 0, "partitions": [{"partition": 0}]}]


class QueuedConsumer:
    """Hands out the records put in its queue, one getmany at a time."""

    def __init__(self) -> None:
        self.records: asyncio.Queue[ConsumerRecord[bytes, bytes]] = asyncio.Queue()

    def assign(self, partitions: list[TopicPartition]) -> None:
        assert partitions == [TP]

    def seek(self, partition: TopicPartition, offset: int) -> None:
        assert (partition, offset) == (TP, 0)

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[Any, int]:
        return dict.fromkeys(partitions, 0)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[Any, int]:
        return dict.fromkeys(partitions, 0)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                return {TP: [await self.records.get()]}
        except TimeoutError:
            return {}


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    value = b'{"n":%d}' % offset
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, None, value, None, -1, len(value), ())


async def test_events_flow_while_a_topic_lookup_hangs() -> None:
    # A lookup may take up to publish_timeout_s: here longer than the test waits.
    settings = Settings(topic_refresh_s=0.0, fan_out_interval_ms=0, publish_timeout_s=3600.0)
    broadcasters = Broadcasters(settings)
    feed = Feed(settings, TopicPolicy(settings), broadcasters, Metrics())
    admin, consumer = HangingAdmin(), QueuedConsumer()
    outbox = Outbox(Format.JSON, 100)
    loop = asyncio.create_task(feed._consume(consumer, admin))  # type: ignore[arg-type]
    got: list[int] = []
    try:
        async with asyncio.timeout(10):
            await feed.positioned.wait()
            broadcasters.get(TOPIC).subscribe(outbox, None)
            await admin.hanging.wait()  # the next lookup is under way, and stays so
            for offset in range(3):
                consumer.records.put_nowait(record(offset))
            while len(got) < 3:
                if not outbox.ready:
                    await outbox.wait()
                got += [event.offset for event in outbox.drain_events()]
    finally:
        await tasks.stop(loop)
    assert got == [0, 1, 2]
