"""One broadcaster per topic: a ring of recent events and the subscriptions to fan out to."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterable, Iterator

from .config import Settings
from .cursor import Cursor
from .events import Event, EventRun, Scope
from .fan_out import FanOut
from .idempotency import IdempotencyIndex
from .kafka import Record
from .outbox import Outbox
from .records import event_of
from .subscription import Subscription
from .topics import partition_for_key
from .tracing import Tracing


class Broadcaster:
    """Receives one topic's records in partition order and hands them to its subscribers.

    Keyed subscriptions are found through a dictionary, so the cost of an event does not
    grow with the number of subscribers to other keys.
    """

    def __init__(
        self,
        topic: str,
        ring_size: int,
        idempotency: IdempotencyIndex | None = None,
        fan_out_pause: float = 0.0,
        tracing: Tracing | None = None,
    ) -> None:
        self.topic = topic
        # None unless tracing is on: then each traced event's fan-out is a span.
        self._tracing = tracing if tracing is not None and tracing.on else None
        self.fan_out_pause = fan_out_pause
        # Events taken but not fanned out yet (see offer), the fan-out being written, and
        # the loop time before which the next does not start.
        self._pending: list[Event] = []
        self._writing: FanOut | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self.next_fan_out = -math.inf
        self.idempotency = idempotency or IdempotencyIndex(window_s=600.0, max_keys=100_000)
        self.ring: deque[Event] = deque(maxlen=ring_size)
        # Next offset per partition: where the consumer stands, and so the live head.
        self.positions: dict[int, int] = {}
        # Per partition, the lowest offset from which the ring holds every record.
        self._ring_floor: dict[int, int] = {}
        self.partition_count = 0
        self._all: set[Subscription] = set()
        self._by_key: dict[str, set[Subscription]] = {}

    # -- the consumer side ----------------------------------------------------------------

    def assign(self, partition: int, start_offset: int) -> None:
        """The consumer starts reading ``partition`` at ``start_offset``."""
        self.positions.setdefault(partition, start_offset)
        self._ring_floor.setdefault(partition, self.positions[partition])
        self.partition_count = max(self.partition_count, partition + 1)

    def take_record(self, record: Record) -> Event | None:
        """Advance the position and keep the record's event in the ring; ``offer`` it next.

        A second copy of an idempotent publish (a retry that raced the first) is skipped.
        """
        partition, offset = record.partition, record.offset
        self.positions[partition] = offset + 1
        event = event_of(self.topic, record, Cursor.of(self.positions))
        if event.tag is not None:
            if self.idempotency.is_repeat(event.tag, partition, offset):
                return None
            self.idempotency.record(event.tag, partition, offset, event.key)
        if len(self.ring) == self.ring.maxlen:
            evicted = self.ring[0]
            self._ring_floor[evicted.partition] = evicted.offset + 1
        self.ring.append(event)
        return event

    def offer(self, events: list[Event]) -> None:
        """Fan ``events`` out now if the topic's last fan-out is written and its pause is
        over; else together with any others that arrive meanwhile, as soon as it is.

        A write to a socket costs about as much whatever it carries, so after a fan-out
        that took t to write, the topic's next waits ``fan_out_pause`` times t more: a busy
        topic reaches its subscribers in fewer, larger writes, and its fan-outs take at
        most 1 / (1 + fan_out_pause) of the loop. A topic that gets few events is never
        held back, and none waits longer than about (1 + fan_out_pause) fan-outs.
        """
        self._pending.extend(events)
        if self._writing is not None or self._flush_timer is not None or not self._pending:
            return
        loop = asyncio.get_running_loop()
        wait = self.next_fan_out - loop.time()
        if wait <= 0:
            self.flush()
        else:
            self._flush_timer = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        """Finish the fan-out being written, then start one of the events ``offer`` held."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._writing is not None:
            self._writing.finish()
            self._written(self._writing)
        events, self._pending = self._pending, []
        if events:
            self._writing = self._start(events, asyncio.get_running_loop().time())
            self._go_on(self._writing)

    def _go_on(self, writing: FanOut) -> None:
        """Write ``writing``'s next slice; the rest in later turns of the loop."""
        if self._writing is not writing:
            return  # finished by a flush meanwhile
        try:
            done = writing.step()
        except BaseException:
            self._writing = None  # the topic's later events must not wait for it forever
            raise
        if not done:
            asyncio.get_running_loop().call_soon(self._go_on, writing)
            return
        self._written(writing)
        if self._pending:
            self.offer([])

    def _written(self, writing: FanOut) -> None:
        self._writing = None
        # Measured in the fan-out's own writing time, not the wall time it spanned: the
        # loop's other work between its slices is not a cost of this topic's fan-outs.
        self.next_fan_out = writing.started + writing.spent * (1 + self.fan_out_pause)

    @property
    def busy(self) -> bool:
        """Whether a fan-out is being written or events wait for the next."""
        return self._writing is not None or bool(self._pending)

    def fan_out(self, events: list[Event]) -> None:
        """Hand ``events`` (taken in this order) to their subscribers now, as runs: a
        subscriber gets all of its events of the call together, in one write when it is idle."""
        if events:
            self._start(events, 0.0).finish()

    def _start(self, events: list[Event], now: float) -> FanOut:
        groups: list[tuple[list[Subscription], EventRun]] = []
        if self._all:
            groups.append((list(self._all), EventRun(events, Scope.TOPIC)))
        if self._by_key:
            by_key: dict[str, list[Event]] = {}
            for event in events:
                if event.key is not None and event.key in self._by_key:
                    by_key.setdefault(event.key, []).append(event)
            for key, keyed in by_key.items():
                groups.append((list(self._by_key[key]), EventRun(keyed, Scope.PARTITION)))
        span = (
            self._tracing.fan_out(self.topic, events, self.subscriber_count)
            if self._tracing is not None
            else None
        )
        return FanOut(groups, self.unsubscribe, now, span)

    # -- the client side ------------------------------------------------------------------

    def key_partition(self, key: str) -> int | None:
        return partition_for_key(key, self.partition_count) if self.partition_count else None

    def cursor(self, key: str | None = None) -> Cursor:
        """The live head: a subscriber starting here receives every later event."""
        return self._cursor_at(self.positions, key)

    def floor_cursor(self, key: str | None = None) -> Cursor:
        """The oldest position the ring can resume from."""
        return self._cursor_at(self._ring_floor, key)

    def _cursor_at(self, offsets: dict[int, int], key: str | None) -> Cursor:
        # A keyed cursor names only the key's partition (none while the topic has none).
        if key is None:
            return Cursor.of(offsets)
        partition = self.key_partition(key)
        if partition is None:
            return Cursor()
        return Cursor(((partition, offsets.get(partition, 0)),))

    def recent(self, key: str | None, limit: int) -> list[Event]:
        """The newest ``limit`` events in the ring (of ``key`` only, when given), oldest first."""
        picked: list[Event] = []
        for event in reversed(self.ring):
            if key is None or event.key == key:
                picked.append(event)
                if len(picked) == limit:
                    break
        picked.reverse()
        return picked

    def covers(self, cursor: Cursor, key: str | None = None) -> bool:
        """Whether the ring still holds every event after ``cursor`` (of ``key``'s partition)."""
        start = cursor.as_dict()
        if key is None:
            partitions: Iterable[int] = self._ring_floor
        else:
            partition = self.key_partition(key)
            partitions = () if partition is None else (partition,)
        return all(start.get(p, 0) >= self._ring_floor.get(p, 0) for p in partitions)

    def learn_partition_count(self, count: int) -> None:
        """Kafka's partition count, known before the consumer assigned the topic."""
        self.partition_count = max(self.partition_count, count)

    def partitions_for(self, key: str | None) -> list[int]:
        """The partitions a subscription to ``key`` (or to the whole topic) reads."""
        if key is None:
            return list(range(self.partition_count))
        partition = self.key_partition(key)
        return [] if partition is None else [partition]

    def backlog(self, cursor: Cursor, key: str | None, enough: int) -> bool:
        """Whether the ring holds more than ``enough`` events after ``cursor`` (of ``key``):
        more than a subscriber's queue takes at once, to be caught up paced instead."""
        return any(
            behind > enough for behind, _event in enumerate(self.events_after(cursor, key), 1)
        )

    def events_after(self, cursor: Cursor, key: str | None) -> Iterator[Event]:
        """Ring events after ``cursor`` (of ``key`` only, when given), in ring order."""
        start_at = cursor.as_dict()
        for event in self.ring:
            if key is not None and event.key != key:
                continue
            if event.offset >= start_at.get(event.partition, 0):
                yield event

    def subscribe(
        self,
        outbox: Outbox,
        key: str | None,
        since: Cursor | None = None,
        subscription: Subscription | None = None,
        latest: bool = False,
    ) -> Subscription:
        """Follow this topic from ``since`` or from the live head (``latest``: mode=latest).

        ``since`` must be covered by the ring (see ``covers``): its events are queued first,
        then live ones, with nothing missed or repeated at the seam. A ``subscription`` that
        caught up from Kafka is handed over here.
        """
        # Held-back events go to the subscribers they were taken for: a new one starts after
        # them (at the head), or gets them from the ring (from ``since``), never twice.
        if self._pending or self._writing is not None:
            self.flush()
        start = self.cursor(key) if since is None else since
        if subscription is None:
            subscription = Subscription(
                self.topic, key, outbox, cursor=start.encode(self.topic), latest=latest
            )
        if since is not None:
            start_at = since.as_dict()
            if key is None:
                subscription.floor = start_at
            for event in self.events_after(since, key):
                outbox.put_event(subscription, event)
            # A cursor from an instance further ahead: skip what it already covers.
            subscription.skip_below = {
                partition: offset
                for partition, offset in start_at.items()
                if offset > self.positions.get(partition, 0)
            }
        if key is None:
            self._all.add(subscription)
        else:
            self._by_key.setdefault(key, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription.key is None:
            self._all.discard(subscription)
            return
        keyed = self._by_key.get(subscription.key)
        if keyed is not None:
            keyed.discard(subscription)
            if not keyed:
                del self._by_key[subscription.key]

    @property
    def subscriber_count(self) -> int:
        return len(self._all) + sum(len(s) for s in self._by_key.values())


class Broadcasters:
    """The broadcaster of every topic this instance reads, and of topics Kafka does not have
    yet only while someone waits on them (``release``)."""

    def __init__(self, settings: Settings, tracing: Tracing | None = None) -> None:
        self._settings = settings
        self._tracing = tracing
        self._by_topic: dict[str, Broadcaster] = {}

    def get(self, topic: str) -> Broadcaster:
        broadcaster = self._by_topic.get(topic)
        if broadcaster is None:
            settings = self._settings
            index = IdempotencyIndex(settings.idempotency_window_s, settings.idempotency_max_keys)
            broadcaster = self._by_topic[topic] = Broadcaster(
                topic, settings.ring_size, index, settings.fan_out_pause, self._tracing
            )
        return broadcaster

    def release(self, topic: str) -> None:
        """Forget ``topic``'s broadcaster if it holds nothing: no subscriber and no partition
        the consumer reads (a name Kafka does not have, asked for by a reader)."""
        broadcaster = self._by_topic.get(topic)
        if (
            broadcaster is not None
            and not broadcaster.positions
            and not broadcaster.subscriber_count
            and broadcaster.idempotency.empty
        ):
            del self._by_topic[topic]

    def __len__(self) -> int:
        return len(self._by_topic)

    def idle_count(self) -> int:
        """Broadcasters that nobody subscribes to (read only to keep their ring)."""
        return sum(1 for broadcaster in self._by_topic.values() if not broadcaster.subscriber_count)

    def __iter__(self) -> Iterator[Broadcaster]:
        return iter(self._by_topic.values())
