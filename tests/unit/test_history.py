"""service/history.py over the in-memory Kafka: bounded catch-up reads and their consumers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from service.config import Settings
from service.errors import RateLimited, ServiceBusy
from service.history import History
from service.kafka.memory import MemoryKafka, MemoryLog

TOPIC = "orders"


async def test_a_read_that_ran_to_its_end_leaves_its_consumer_to_the_next() -> None:
    log = MemoryLog()
    log.create(TOPIC, 3)
    for n in range(30):
        log.append(TOPIC, b"%d" % n, None, n % 3, [])
    stop = {0: 10, 1: 10, 2: 10}
    history = History(Settings(), MemoryKafka(log))

    async def read() -> int:
        return sum([len(batch) async for batch in history.records(TOPIC, {}, stop)])

    try:
        assert await read() == 30
        [kept] = history._idle
        assert await read() == 30  # with the same consumer, given back again
        assert history._idle == [kept]
        # A read cut short does not give its consumer back: it is stopped.
        reading = history.records(TOPIC, {}, stop)
        assert await anext(reading)
        await reading.aclose()
        assert history._idle == []
    finally:
        await history.stop()
    assert history._idle == []


async def test_a_read_stops_at_its_end_offsets_in_order_per_partition() -> None:
    log = MemoryLog()
    log.create(TOPIC, 2)
    for n in range(10):
        log.append(TOPIC, b"%d" % n, None, n % 2, [])
    history = History(Settings(), MemoryKafka(log))
    try:
        read = [r async for batch in history.records(TOPIC, {0: 1}, {0: 4, 1: 2}) for r in batch]
    finally:
        await history.stop()
    assert sorted((r.partition, r.offset) for r in read) == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]
    for partition in (0, 1):
        offsets = [r.offset for r in read if r.partition == partition]
        assert offsets == sorted(offsets)


async def test_a_missing_topic_is_remembered_for_a_moment() -> None:
    log = MemoryLog()
    asked: list[str] = []
    kafka = MemoryKafka(log)
    history = History(Settings(), kafka)
    admin = await history._lookup_admin()
    counts = admin.partition_counts

    async def counted(topics: Sequence[str] | None = None, **kwargs: bool) -> dict[str, int]:
        asked.extend(topics or [])
        return await counts(topics, **kwargs)

    admin.partition_counts = counted  # type: ignore[method-assign]
    try:
        assert [await history.partition_count("ghost") for _ in range(50)] == [0] * 50
        assert asked == ["ghost"]
    finally:
        await history.stop()


async def test_catch_up_reads_are_capped_per_client_and_wait_for_a_reader_at_most_a_while() -> None:
    log = MemoryLog()
    log.create(TOPIC, 1)
    for n in range(10):
        log.append(TOPIC, b"%d" % n, None, 0, [])
    settings = Settings(catchup_readers=2, catchup_per_address=1, catchup_wait_s=0.05)
    history = History(settings, MemoryKafka(log))
    stop = {0: 10}
    first = history.records(TOPIC, {}, stop, "10.0.0.1")
    second = history.records(TOPIC, {}, stop, "10.0.0.2")
    try:
        assert await anext(first) and await anext(second)  # each holds a reader now
        with pytest.raises(RateLimited):
            await anext(history.records(TOPIC, {}, stop, "10.0.0.1"))
        with pytest.raises(ServiceBusy):
            await anext(history.records(TOPIC, {}, stop, "10.0.0.3"))
        await first.aclose()
        third = history.records(TOPIC, {}, stop, "10.0.0.3")
        assert await anext(third)
        await third.aclose()
    finally:
        await second.aclose()
        await history.stop()
