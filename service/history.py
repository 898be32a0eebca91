"""Reading a topic's past straight from Kafka: offset look-ups and bounded catch-up reads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable
from typing import TypeVar

from .config import Settings
from .errors import KafkaUnavailable, RateLimited, ServiceBusy
from .kafka import FAILURES, Admin, Consumer, Kafka, Record, TopicPartition, quietly
from .metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_RECORDS = 2000
# How long a topic found missing is taken as missing, and how many such names are kept.
_MISSING_S = 1.0
_MISSING_KEPT = 10_000
# A catch-up consumer fetches only while a read runs, so a short wait costs no idle CPU; the
# live consumer's long one held reads back (a resume of 100 000 events: first event after
# ~370 ms instead of ~60).
_READ_FETCH_MAX_WAIT_MS = 20


class History:
    """Owns one consumer and an admin client for look-ups; each catch-up read gets a consumer
    of its own (one that a finished read gave back, or a new one)."""

    def __init__(self, settings: Settings, kafka: Kafka, metrics: Metrics | None = None) -> None:
        self._settings = settings
        self._kafka = kafka
        self._metrics = metrics or Metrics()
        self._lookup: Consumer | None = None
        self._admin: Admin | None = None
        self._starting = asyncio.Lock()
        # Catch-up reads are the heavy part of a reconnect storm: only so many at once, only
        # so many per client address, and none waits for a reader for ever.
        self._readers = asyncio.Semaphore(settings.catchup_readers)
        self._by_owner: dict[str, int] = {}
        # Topics found missing, and when (a name nobody created is asked for again and again).
        self._missing: dict[str, float] = {}
        # Consumers of reads that ran to their end, started and assigned nothing: the next
        # read takes one rather than connecting anew (at most one per concurrent read).
        self._idle: list[Consumer] = []
        self._stopped = False

    async def stop(self) -> None:
        self._stopped = True
        consumers, self._idle = self._idle, []
        if self._lookup is not None:
            consumers.append(self._lookup)
            self._lookup = None
        for consumer in consumers:
            await quietly(consumer.stop())
        admin, self._admin = self._admin, None
        if admin is not None:
            await quietly(admin.close())

    def _consumer(self) -> Consumer:
        # Catch-up reads whole partitions: bigger fetches than the live consumer's.
        return self._kafka.consumer(
            "herald-history",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=min(
                self._settings.consumer_fetch_max_wait_ms, _READ_FETCH_MAX_WAIT_MS
            ),
        )

    async def _lookup_consumer(self) -> Consumer:
        async with self._starting:
            if self._lookup is None:
                consumer = self._consumer()
                await self._start(consumer)
                self._lookup = consumer
            return self._lookup

    async def _lookup_admin(self) -> Admin:
        async with self._starting:
            if self._admin is None:
                admin = self._kafka.admin("herald-history-admin")
                try:
                    await self._guard(admin.start())
                except BaseException:
                    with contextlib.suppress(BaseException):
                        await admin.close()
                    raise
                self._admin = admin
            return self._admin

    async def _start(self, consumer: Consumer) -> None:
        """Start ``consumer``, or leave nothing open: a start cut short by a timeout or by
        the client leaving would otherwise strand the connection it was opening."""
        starting = asyncio.ensure_future(consumer.start())
        try:
            await self._guard(asyncio.shield(starting))
        except BaseException:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(starting, self._settings.publish_timeout_s)
            with contextlib.suppress(BaseException):
                await consumer.stop()
            raise

    async def _guard(self, step: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._settings.publish_timeout_s):
                return await step
        except FAILURES as exc:
            self._metrics.kafka_errors.labels("reader").inc()
            log.warning("history: Kafka read failed: %r", exc)
            raise KafkaUnavailable("cannot read this topic's history from Kafka") from None

    async def partition_count(self, topic: str) -> int:
        """How many partitions Kafka has for ``topic`` (0 while it does not exist; a missing
        topic is remembered as such for a moment, not asked for on every request)."""
        missed = self._missing.get(topic)
        if missed is not None and time.monotonic() - missed < _MISSING_S:
            return 0
        admin = await self._lookup_admin()
        count = (await self._guard(admin.partition_counts([topic]))).get(topic, 0)
        if count:
            self._missing.pop(topic, None)
        else:
            if len(self._missing) >= _MISSING_KEPT:
                self._missing.clear()
            self._missing[topic] = time.monotonic()
        return count

    @contextlib.asynccontextmanager
    async def _reader_for(self, owner: str) -> AsyncIterator[None]:
        settings = self._settings
        held = self._by_owner.get(owner, 0)
        if held >= settings.catchup_per_address:
            raise RateLimited(
                f"at most {settings.catchup_per_address} catch-up reads at once per client",
                retry_after=2,
            )
        self._by_owner[owner] = held + 1
        metrics = self._metrics
        try:
            try:
                metrics.catch_up_waiting.inc()
                async with asyncio.timeout(settings.catchup_wait_s):
                    await self._readers.acquire()
            except TimeoutError:
                raise ServiceBusy("every catch-up reader is busy", retry_after=2) from None
            finally:
                metrics.catch_up_waiting.dec()
            metrics.catch_up_reads.inc()
            metrics.catch_up_active.inc()
            try:
                yield
            finally:
                metrics.catch_up_active.dec()
                self._readers.release()
        finally:
            left = self._by_owner.pop(owner) - 1
            if left:
                self._by_owner[owner] = left

    async def beginnings(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """The oldest offset Kafka still holds in each partition."""
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return {}
        consumer = await self._lookup_consumer()
        found = await self._guard(consumer.beginning_offsets(tps))
        return {tp.partition: offset for tp, offset in found.items()}

    async def ends(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """The offset after the last record Kafka holds in each partition."""
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return {}
        consumer = await self._lookup_consumer()
        found = await self._guard(consumer.end_offsets(tps))
        return {tp.partition: offset for tp, offset in found.items()}

    async def at_time(
        self, topic: str, partitions: Iterable[int], timestamp_ms: int
    ) -> dict[int, int]:
        """Per partition, the first offset at or after ``timestamp_ms`` (else its end)."""
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return {}
        consumer = await self._lookup_consumer()
        found = await self._guard(consumer.offsets_for_times(dict.fromkeys(tps, timestamp_ms)))
        missing = [tp for tp, hit in found.items() if hit is None]
        ends = await self._guard(consumer.end_offsets(missing)) if missing else {}
        return {
            tp.partition: (hit.offset if hit is not None else ends[tp]) for tp, hit in found.items()
        }

    async def records(
        self, topic: str, start: dict[int, int], stop: dict[int, int], owner: str = ""
    ) -> AsyncGenerator[list[Record], None]:
        """Batches of records with ``start[p] <= offset < stop[p]``, in order per partition.

        For ``owner`` (a client address): 429 past its share of readers at once, 503 when no
        reader comes free in time.
        """
        wanted = {p: (start.get(p, 0), end) for p, end in stop.items() if start.get(p, 0) < end}
        if not wanted:
            return
        async with self._reader_for(owner):
            if self._idle:
                consumer = self._idle.pop()
            else:
                consumer = self._consumer()
                await self._start(consumer)
            finished = False
            try:
                tps = {p: TopicPartition(topic, p) for p in wanted}
                consumer.assign(list(tps.values()))
                for p, (first, _) in wanted.items():
                    consumer.seek(tps[p], first)
                remaining = set(wanted)
                while remaining:
                    batches = await self._guard(
                        consumer.getmany(
                            *[tps[p] for p in remaining], timeout_ms=500, max_records=_MAX_RECORDS
                        )
                    )
                    out: list[Record] = []
                    for tp, records in batches.items():
                        end = wanted[tp.partition][1]
                        out.extend(r for r in records if r.offset < end)
                        if records and records[-1].offset + 1 >= end:
                            remaining.discard(tp.partition)
                    for p in list(remaining):
                        # Offsets can skip (compaction, transaction markers): trust the position.
                        if await self._guard(consumer.position(tps[p])) >= wanted[p][1]:
                            remaining.discard(p)
                    if out:
                        yield out
                finished = True
            finally:
                if finished and not self._stopped:
                    consumer.assign([])  # no prefetching for a read that is over
                    self._idle.append(consumer)
                else:
                    # A read cut short (an error, the client left) may have left anything
                    # half done in its consumer.
                    await quietly(consumer.stop())
