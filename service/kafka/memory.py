"""An in-memory Kafka for tests: topics, partitions and offsets, no broker, no network.

It keeps what Herald relies on: per-partition order and offsets, keys on the partition
Kafka's default partitioner picks, fetches that wait for records, offsets by time,
retention (``MemoryLog.delete_before``) and an outage (``MemoryLog.reachable``). It is not a
model of replication, leaders or consumer groups; the real-broker tests cover those.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError
from aiokafka.structs import OffsetAndTimestamp, RecordMetadata, TopicPartition

from ..topics import partition_for_key
from . import Admin, Consumer, Found, Producer, Record, Stored


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record in the log (what a consumer receives)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(slots=True)
class _Partition:
    records: list[StoredRecord] = field(default_factory=list)
    # The offset of records[0]: raised by retention.
    base: int = 0

    @property
    def end(self) -> int:
        return self.base + len(self.records)


class MemoryLog:
    """The topics of one in-memory cluster, shared by every client made from it."""

    def __init__(self) -> None:
        self.topics: dict[str, list[_Partition]] = {}
        # False: every client request fails as if the cluster were unreachable.
        self.reachable = True
        self._arrivals: set[asyncio.Future[None]] = set()
        self._spread = itertools.count()

    def create(self, topic: str, partitions: int) -> None:
        if topic not in self.topics:
            self.topics[topic] = [_Partition() for _ in range(partitions)]
            self._notify()

    def append(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int | None,
        headers: Sequence[tuple[str, bytes]],
        timestamp_ms: int | None = None,
    ) -> StoredRecord:
        """Store a record as Kafka's producer would place it; the stored record."""
        partitions = self.topics.get(topic)
        if partitions is None:
            raise UnknownTopicOrPartitionError(topic)
        if partition is None:
            if key is not None:
                partition = partition_for_key(key.decode(errors="replace"), len(partitions))
            else:
                # Kafka's own producer spreads unkeyed records (Herald never leaves it to it).
                partition = next(self._spread) % len(partitions)
        log = partitions[partition]
        timestamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        record = StoredRecord(topic, partition, log.end, timestamp, key, value, tuple(headers))
        log.records.append(record)
        self._notify()
        return record

    def delete_before(self, topic: str, partition: int, offset: int) -> None:
        """Retention: records below ``offset`` are gone."""
        log = self.topics[topic][partition]
        drop = max(0, min(offset, log.end) - log.base)
        del log.records[:drop]
        log.base += drop

    def partition(self, tp: TopicPartition) -> _Partition:
        partitions = self.topics.get(tp.topic)
        index: int = tp.partition
        if partitions is None or not 0 <= index < len(partitions):
            raise UnknownTopicOrPartitionError(f"{tp.topic}/{index}")
        return partitions[index]

    def check(self) -> None:
        if not self.reachable:
            raise KafkaConnectionError("the in-memory cluster is unreachable")

    async def arrival(self, timeout_s: float) -> None:
        """Wait until something is appended or created, at most ``timeout_s``."""
        waiter = asyncio.get_running_loop().create_future()
        self._arrivals.add(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._arrivals.discard(waiter)

    def _notify(self) -> None:
        arrivals, self._arrivals = self._arrivals, set()
        for waiter in arrivals:
            if not waiter.done():
                waiter.set_result(None)


class MemoryKafka:
    """A ``Kafka`` whose clients all share one ``MemoryLog``."""

    def __init__(self, log: MemoryLog | None = None) -> None:
        self.log = log or MemoryLog()

    def consumer(
        self,
        client_id: str,
        *,
        fetch_max_wait_ms: int | None = None,
        max_partition_fetch_bytes: int | None = None,
        metadata_max_age_ms: int | None = None,
    ) -> Consumer:
        return MemoryConsumer(self.log, 500 if fetch_max_wait_ms is None else fetch_max_wait_ms)

    def producer(self, client_id: str) -> Producer:
        return MemoryProducer(self.log)

    def explain(self, failure: BaseException) -> str:
        return f"cannot connect to Kafka (in memory): {failure}"

    def admin(self, client_id: str) -> Admin:
        return MemoryAdmin(self.log)


class MemoryConsumer:
    """A consumer without a group over a MemoryLog."""

    def __init__(self, log: MemoryLog, fetch_max_wait_ms: int) -> None:
        self._log = log
        self._wait_s = fetch_max_wait_ms / 1000
        self._positions: dict[TopicPartition, int] = {}
        self._started = False

    async def start(self) -> None:
        self._log.check()
        self._started = True

    async def stop(self) -> None:
        self._started = False

    def assign(self, partitions: Collection[TopicPartition]) -> None:
        kept = {tp: self._positions.get(tp) for tp in partitions}
        self._positions = {tp: self._begin(tp) if at is None else at for tp, at in kept.items()}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        if partition not in self._positions:
            raise ValueError(f"{partition} is not assigned")
        self._positions[partition] = offset

    async def position(self, partition: TopicPartition) -> int:
        self._log.check()
        return self._positions[partition]

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        chosen = list(partitions) or list(self._positions)
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        while True:
            found = self._take(chosen, max_records) if self._log.reachable else {}
            left = deadline - asyncio.get_running_loop().time()
            if found or left <= 0:
                return found
            # Like a broker holding a fetch: records end the wait at once.
            await self._log.arrival(min(left, max(self._wait_s, 0.001)))

    def _take(
        self, chosen: list[TopicPartition], max_records: int | None
    ) -> dict[TopicPartition, list[Record]]:
        found: dict[TopicPartition, list[Record]] = {}
        budget = max_records if max_records is not None else 1_000_000
        for tp in chosen:
            if budget <= 0:
                break
            log = self._log.partition(tp)
            at = self._positions[tp]
            if at < log.base:
                at = log.base  # auto_offset_reset="earliest", as Herald configures aiokafka
            records = log.records[at - log.base : at - log.base + budget]
            if records:
                found[tp] = list(records)
                budget -= len(records)
                at = records[-1].offset + 1
            self._positions[tp] = at
        return found

    async def beginning_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        self._log.check()
        return {tp: self._log.partition(tp).base for tp in partitions}

    async def end_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        self._log.check()
        return {tp: self._log.partition(tp).end for tp in partitions}

    async def offsets_for_times(
        self, timestamps: dict[TopicPartition, int]
    ) -> dict[TopicPartition, Found | None]:
        self._log.check()
        found: dict[TopicPartition, Found | None] = {}
        for tp, timestamp in timestamps.items():
            hit = next(
                (r for r in self._log.partition(tp).records if r.timestamp >= timestamp), None
            )
            found[tp] = None if hit is None else OffsetAndTimestamp(hit.offset, hit.timestamp)
        return found

    def _begin(self, tp: TopicPartition) -> int:
        partitions = self._log.topics.get(tp.topic)
        return partitions[tp.partition].base if partitions else 0


class MemoryProducer:
    """An acks=all producer over a MemoryLog: a record is stored when ``send`` returns."""

    def __init__(self, log: MemoryLog) -> None:
        self._log = log

    async def start(self) -> None:
        self._log.check()

    async def stop(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> Collection[int]:
        self._log.check()
        partitions = self._log.topics.get(topic)
        if partitions is None:
            raise UnknownTopicOrPartitionError(topic)
        return set(range(len(partitions)))

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Stored]:
        self._log.check()
        record = self._log.append(topic, value, key, partition, headers or [], timestamp_ms)
        acked: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        tp = TopicPartition(topic, record.partition)
        acked.set_result(
            RecordMetadata(topic, record.partition, tp, record.offset, record.timestamp, 0, None)
        )
        return acked


class MemoryAdmin:
    """Topic lookups and creation over a MemoryLog."""

    def __init__(self, log: MemoryLog) -> None:
        self._log = log

    async def start(self) -> None:
        self._log.check()

    async def close(self) -> None:
        pass

    async def partition_counts(
        self, topics: Sequence[str] | None = None, *, with_leaders: bool = False
    ) -> dict[str, int]:
        self._log.check()
        names = self._log.topics if topics is None else [t for t in topics if t in self._log.topics]
        return {name: len(self._log.topics[name]) for name in names}

    async def create_topic(self, topic: str, partitions: int, replication: int) -> None:
        self._log.check()
        self._log.create(topic, partitions)
