"""The one Kafka consumer of a process: every partition of every exposed topic, to broadcasters.

No consumer group: every instance reads everything, so any instance can serve any client.
Partitions are assigned by hand and every position is sought explicitly, because a
subscribed consumer without a group resets *all* partitions whenever the set changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from . import tasks
from .broadcaster import Broadcasters
from .config import Settings
from .kafka import (
    FAILURES,
    Admin,
    Consumer,
    Kafka,
    Record,
    TopicPartition,
    leaked_cancel,
    quietly,
)
from .lag import Lag
from .metrics import Metrics
from .topics import TopicPolicy
from .tracing import Tracing

log = logging.getLogger(__name__)

_POLL_MS = 200
_MAX_RECORDS = 5000
_FAN_OUT_CHUNK = 64
_RECONNECT_S = 1.0
# How often the consumer's positions are compared with Kafka's end offsets (see lag.py).
LAG_PROBE_S = 1.0


class Feed:
    """Runs the consumer loop in a task it owns; reports whether Kafka is reachable."""

    def __init__(
        self,
        settings: Settings,
        kafka: Kafka,
        policy: TopicPolicy,
        broadcasters: Broadcasters,
        metrics: Metrics,
        on_records: Callable[[str], None] | None = None,
        lag: Lag | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._settings = settings
        self._kafka = kafka
        self._policy = policy
        self._broadcasters = broadcasters
        self._metrics = metrics
        self.lag = lag or Lag(0.0, 0.0, metrics, lambda _behind_s: None)
        self._tracing = tracing or Tracing()
        # Told each topic that received records (the CDN purger listens here).
        self._on_records = on_records
        self._assigned: set[TopicPartition] = set()
        # Offsets the first assignment must reach before this instance is "positioned".
        self._initial_ends: dict[TopicPartition, int] | None = None
        self.positioned = asyncio.Event()
        self.kafka_reachable = False
        # Why the last attempt to connect failed, until one succeeds (for /readyz and the log).
        self.problem: str | None = None
        # The last unexpected error of the loop, said once (see _run).
        self._unexpected: str | None = None
        self._task: asyncio.Task[None] | None = None
        # The exposed partitions the last topic lookup found, until the loop takes them.
        self._found: set[TopicPartition] | None = None
        self._found_now = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="herald-consumer")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None

    async def _run(self) -> None:
        timeout = self._settings.publish_timeout_s
        while True:
            consumer = self._kafka.consumer(
                "herald-consumer", metadata_max_age_ms=int(self._settings.topic_refresh_s * 1000)
            )
            # The consumer only keeps metadata of assigned topics: the admin client finds
            # topics and partitions that appear later.
            admin = self._kafka.admin("herald-consumer-admin")
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # meets a step finishing, and stopping would then wait for good.
                async with asyncio.timeout(timeout):
                    await consumer.start()
                    await admin.start()
                self._connected()
                self._assigned = set()
                await self._consume(consumer, admin)
            except FAILURES as exc:
                self._set_reachable(False)
                self._metrics.kafka_connect_failures.inc()
                self._metrics.kafka_errors.labels("consumer").inc()
                self._failed(self._kafka.explain(exc))
            except asyncio.CancelledError:
                if not leaked_cancel():
                    raise
                # Not a stop: aiokafka raised a cancel of its own tasks (see kafka.quietly).
                self._metrics.kafka_errors.labels("consumer").inc()
                log.warning("consumer: the Kafka client cancelled itself; reconnecting")
            except Exception as exc:
                # The loop that feeds every subscriber outlives a fault of its own or of the
                # client: the cause once (with its traceback), then fresh clients.
                self._metrics.kafka_errors.labels("consumer").inc()
                unexpected = repr(exc)
                if unexpected != self._unexpected:
                    log.exception("consumer: unexpected error; reconnecting in %ss", _RECONNECT_S)
                self._unexpected = unexpected
            finally:
                await quietly(consumer.stop())
                await quietly(admin.close())
            await asyncio.sleep(_RECONNECT_S)

    async def _consume(self, consumer: Consumer, admin: Admin) -> None:
        # Topics are looked up in a task of their own: with thousands of topics in the
        # cluster a lookup takes a while, and deliveries must not pause for it.
        watcher = asyncio.create_task(self._watch_topics(admin), name="herald-topic-watch")
        probe = asyncio.create_task(self._probe_lag(consumer), name="herald-lag-probe")
        try:
            while True:
                for helper in (watcher, probe):
                    if helper.done():
                        helper.result()  # a helper that ended unexpectedly fails the loop too
                if self._found is not None:
                    wanted, self._found = self._found, None
                    await self._assign(consumer, wanted)
                if not self._assigned:
                    # Nothing to read yet: wait for the next lookup to find topics.
                    self._found_now.clear()
                    await self._found_now.wait()
                    continue
                batches = await consumer.getmany(timeout_ms=_POLL_MS, max_records=_MAX_RECORDS)
                for tp, records in batches.items():
                    await self._deliver(tp, records)
                self._metrics.flush()
                self._check_positioned()
        finally:
            await tasks.stop(watcher)
            await tasks.stop(probe)

    async def _deliver(self, tp: TopicPartition, records: list[Record]) -> None:
        broadcaster = self._broadcasters.get(tp.topic)
        if self._tracing.on:
            self._tracing.consumed(tp.topic, records)
        for start in range(0, len(records), _FAN_OUT_CHUNK):
            if start:
                # Let writers drain between chunks: a burst of records must not overflow the
                # queue of a client that keeps up.
                await asyncio.sleep(0)
            chunk = records[start : start + _FAN_OUT_CHUNK]
            taken = (broadcaster.take_record(record) for record in chunk)
            events = [event for event in taken if event is not None]
            if len(events) < len(chunk):
                self._metrics.dropped.labels("duplicate").inc(len(chunk) - len(events))
            broadcaster.offer(events)
        self._metrics.consumed.inc(len(records))
        if self._on_records is not None:
            self._on_records(tp.topic)

    async def _probe_lag(self, consumer: Consumer) -> None:
        """Every ``LAG_PROBE_S``, how far each assigned partition is behind Kafka's end."""
        while True:
            await asyncio.sleep(LAG_PROBE_S)
            assigned = sorted(self._assigned)
            if not assigned:
                continue
            try:
                async with asyncio.timeout(self._settings.publish_timeout_s):
                    ends = await consumer.end_offsets(assigned)
                    # The consumer's position, not the broadcaster's: it also steps over
                    # offsets that hold no record (transaction markers, compacted ones).
                    heads = {tp: (await consumer.position(tp), ends[tp]) for tp in assigned}
            except FAILURES as exc:
                self._metrics.kafka_errors.labels("consumer").inc()
                log.debug("consumer: lag probe failed: %r", exc)
                continue
            self.lag.observe(heads, time.monotonic())

    async def _watch_topics(self, admin: Admin) -> None:
        """Every ``topic_refresh_s``, the exposed partitions, for the loop to assign."""
        while True:
            try:
                async with asyncio.timeout(self._settings.publish_timeout_s):
                    counts = await admin.partition_counts()
            except FAILURES as exc:
                self._set_reachable(False)
                self._metrics.kafka_errors.labels("admin").inc()
                log.warning("consumer: metadata refresh failed: %r", exc)
            else:
                self._set_reachable(True)
                self._found = {
                    TopicPartition(name, partition)
                    for name, count in counts.items()
                    if self._policy.exposed(name)
                    for partition in range(count)
                }
                self._found_now.set()
            await asyncio.sleep(self._settings.topic_refresh_s)

    async def _assign(self, consumer: Consumer, wanted: set[TopicPartition]) -> None:
        """Assign the partitions in ``wanted`` that are new, without moving the others."""
        new = wanted - self._assigned
        if not new:
            if self._initial_ends is None:
                self._initial_ends = {}  # nothing exposed exists yet: at the head already
            self._check_positioned()
            return
        new_list = sorted(new)
        # Assigned before asking for offsets: the consumer then fetches the metadata of every
        # topic in one request. Asked about topics it does not know, aiokafka learns them one
        # topic per round trip, and hundreds of topics never fit in the timeout.
        consumer.assign(sorted(wanted))
        begins = await consumer.beginning_offsets(new_list)
        if self._initial_ends is None:
            # Start at the end, but read back a ring's worth so snapshots have history.
            ends = await consumer.end_offsets(new_list)
            self._initial_ends = dict(ends)
            ring = self._settings.ring_size
            starts = {tp: max(begins[tp], ends[tp] - ring) for tp in new_list}
        else:
            # A topic or partition that appeared while running is read from its beginning,
            # so a client that subscribed before it existed gets its first event.
            starts = dict(begins)
        for tp in new_list:
            self._broadcasters.get(tp.topic).assign(tp.partition, starts[tp])
        for tp in wanted:
            consumer.seek(tp, self._broadcasters.get(tp.topic).positions[tp.partition])
        self._assigned = wanted
        log.info("consumer: assigned %d partitions (%d new)", len(wanted), len(new))
        self._check_positioned()

    def _check_positioned(self) -> None:
        if self.positioned.is_set() or self._initial_ends is None:
            return
        for tp, end in self._initial_ends.items():
            if self._broadcasters.get(tp.topic).positions.get(tp.partition, 0) < end:
                return
        self.positioned.set()
        log.info("consumer: positioned at the live head")

    def _failed(self, problem: str) -> None:
        # Said once per cause, not once per retry: the retries go on quietly.
        if problem != self.problem:
            log.error("%s (retrying every %ss)", problem, _RECONNECT_S)
        self.problem = problem

    def _connected(self) -> None:
        if self.problem is not None:
            log.info("consumer: connected to Kafka at %s", self._settings.kafka_bootstrap)
        self.problem = None

    def _set_reachable(self, reachable: bool) -> None:
        self.kafka_reachable = reachable
        self._metrics.kafka_up.set(1 if reachable else 0)
