"""One broadcaster per topic: a ring of recent events and the subscriptions to fan out to."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from .config import Settings
from .cursor import Cursor
from .events import Event, event_from_record
from .idempotency import IdempotencyIndex
from .outbox import Outbox, Subscription
from .topics import partition_for_key


class Broadcaster:
    """Receives one topic's records in partition order and hands them to its subscribers.

    Keyed subscriptions are found through a dictionary, so the cost of an event does not
    grow with the number of subscribers to other keys.
    """

    def __init__(
        self, topic: str, ring_size: int, idempotency: IdempotencyIndex | None = None
    ) -> None:
        self.topic = topic
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

    def publish_record(
        self,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]],
    ) -> Event | None:
        """Deliver one record: advance the position, keep it in the ring, fan it out.

        A second copy of an idempotent publish (a retry that raced the first) is skipped.
        """
        self.positions[partition] = offset + 1
        event = event_from_record(
            self.topic,
            partition,
            offset,
            timestamp_ms,
            key,
            value,
            tuple(headers),
            Cursor.of(self.positions),
        )
        if event.tag is not None:
            if self.idempotency.is_repeat(event.tag, partition, offset):
                return None
            self.idempotency.record(event.tag, partition, offset, event.key)
        if len(self.ring) == self.ring.maxlen:
            evicted = self.ring[0]
            self._ring_floor[evicted.partition] = evicted.offset + 1
        self.ring.append(event)
        self._fan_out(event)
        return event

    def _fan_out(self, event: Event) -> None:
        targets: list[Subscription] = list(self._all)
        if event.key is not None:
            keyed = self._by_key.get(event.key)
            if keyed:
                targets.extend(keyed)
        partition, offset = event.partition, event.offset
        for subscription in targets:
            skip_below = subscription.skip_below
            if skip_below and offset < skip_below.get(partition, -1):
                continue
            if not subscription.outbox.put_event(subscription, event):
                self.unsubscribe(subscription)

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
    ) -> Subscription:
        """Follow this topic from ``since`` or from the live head.

        ``since`` must be covered by the ring (see ``covers``): its events are queued first,
        then live ones, with nothing missed or repeated at the seam. A ``subscription`` that
        caught up from Kafka is handed over here.
        """
        start = self.cursor(key) if since is None else since
        if subscription is None:
            subscription = Subscription(self.topic, key, outbox, cursor=start.encode(self.topic))
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
    """The broadcaster of every topic this instance has seen, created on first use."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._by_topic: dict[str, Broadcaster] = {}

    def get(self, topic: str) -> Broadcaster:
        broadcaster = self._by_topic.get(topic)
        if broadcaster is None:
            settings = self._settings
            index = IdempotencyIndex(settings.idempotency_window_s, settings.idempotency_max_keys)
            broadcaster = self._by_topic[topic] = Broadcaster(topic, settings.ring_size, index)
        return broadcaster

    def __iter__(self) -> Iterator[Broadcaster]:
        return iter(self._by_topic.values())
