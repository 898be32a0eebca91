"""service/history.py over the in-memory Kafka: bounded catch-up reads and their consumers."""

from __future__ import annotations

from service.config import Settings
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
