"""Resuming from any point: where a ``since`` starts, catching up from Kafka, history pages.

The ring serves recent cursors. Older ones are read from Kafka up to the broadcaster's
position, again and again until the ring covers where the reader stands; the hand-over to
the live stream then happens in one step with no await, so nothing falls in the seam.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .broadcaster import Broadcaster
from .cursor import Cursor, Reading
from .errors import BadCursor
from .events import Event, Scope
from .history import History
from .records import event_of
from .subscription import Subscription

EARLIEST = "earliest"


@dataclass(frozen=True, slots=True)
class Start:
    """Where delivery starts; ``recovered`` is False when the asked-for point was gone.

    ``fixed`` says the start was a cursor that Kafka still holds: the same start forever,
    where ``earliest`` and a time move as retention deletes records.
    """

    cursor: Cursor
    recovered: bool = True
    fixed: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """Events after a cursor and the cursor to ask for the next page with."""

    events: list[Event]
    next: Cursor
    scope: Scope
    after: Cursor

    def render(self) -> list[dict[str, Any]]:
        """The events as delivered; whole-topic ids never fall below the page's start."""
        floor = self.after.as_dict() if self.scope is Scope.TOPIC else {}
        rendered = []
        for event in self.events:
            raised = event.raised_to(floor) if floor else None
            own_id = raised.encode(event.topic) if raised is not None else None
            rendered.append(event.as_dict(self.scope, own_id))
        return rendered


class Resumer:
    """Turns ``since`` values into positions and replays what the ring no longer holds."""

    def __init__(self, history: History) -> None:
        self.history = history

    async def start(self, broadcaster: Broadcaster, key: str | None, since: str) -> Start:
        """Parse ``since`` (a cursor, ``earliest`` or an RFC 3339 time) into a start point."""
        topic = broadcaster.topic
        if not broadcaster.partition_count:
            # Not assigned yet (the topic is brand new): learn its shape from Kafka.
            broadcaster.learn_partition_count(await self.history.partition_count(topic))
        partitions = broadcaster.partitions_for(key)
        if since == EARLIEST:
            return Start(Cursor.of(await self.history.beginnings(topic, partitions)))
        moment = _parse_time(since)
        if moment is not None:
            # Kafka has no record before 1970: an earlier time means the first one there is.
            since_ms = max(0, int(moment.timestamp() * 1000))
            offsets = await self.history.at_time(topic, partitions, since_ms)
            return Start(Cursor.of(offsets))
        cursor = Cursor.decode(topic, since)
        if broadcaster.covers(cursor, key):
            return Start(cursor, fixed=True)
        # Older than the ring: Kafka may still hold it, or retention may have removed it.
        begins = await self.history.beginnings(topic, partitions)
        wanted = cursor.as_dict()
        lost = any(wanted.get(p, 0) < first for p, first in begins.items())
        return Start(Cursor.of(_raise_to(wanted, begins)), recovered=not lost, fixed=not lost)

    async def catch_up(
        self, broadcaster: Broadcaster, subscription: Subscription, start: Cursor
    ) -> None:
        """Deliver from ``start`` out of Kafka, then hand ``subscription`` to the live stream."""
        key = subscription.key
        current = _positions_from(start, broadcaster.partitions_for(key), key)
        while not broadcaster.covers(Cursor.of(current), key):
            target = {p: broadcaster.positions.get(p, 0) for p in current}
            # aclosing: a cancelled catch-up stops its Kafka reader now, not at collection.
            reading = self._read(broadcaster, key, current, target)
            outbox = subscription.outbox
            async with contextlib.aclosing(reading):
                async for events in reading:
                    put = outbox.put_catch_up(subscription, events)
                    # What did not fit waits for the writer to make room.
                    while put < len(events):
                        if not await outbox.room_for_catch_up():
                            return  # the connection is closing or lagging: nothing to do
                        events = events[put:]
                        put = outbox.put_catch_up(subscription, events)
        broadcaster.subscribe(subscription.outbox, key, Cursor.of(current), subscription)

    async def page(
        self, broadcaster: Broadcaster, key: str | None, after: Cursor, limit: int
    ) -> Page:
        """Up to ``limit`` events after ``after``: from Kafka while the ring lacks them."""
        scope = Scope.PARTITION if key is not None else Scope.TOPIC
        current = _positions_from(after, broadcaster.partitions_for(key), key)
        events: list[Event] = []
        if not broadcaster.covers(after, key):
            target = {p: broadcaster.positions.get(p, 0) for p in current}
            reading = self._read(broadcaster, key, current, target)
            async with contextlib.aclosing(reading):
                async for batch in reading:
                    for event in batch:
                        events.append(event)
                        if len(events) == limit:
                            return Page(events, event.cursor(scope), scope, after)
        for event in broadcaster.events_after(Cursor.of(current), key):
            events.append(event)
            current[event.partition] = event.offset + 1
            if len(events) == limit:
                return Page(events, _after_ring_event(event, scope, current), scope, after)
        head = broadcaster.cursor(key).as_dict()
        return Page(events, Cursor.of(_raise_to(current, head)), scope, after)

    async def _read(
        self,
        broadcaster: Broadcaster,
        key: str | None,
        current: dict[int, int],
        target: dict[int, int],
    ) -> AsyncGenerator[list[Event], None]:
        """Events from Kafka between ``current`` and ``target``, a fetch at a time.

        ``current`` advances past each fetch as it is yielded: every event carries its own
        cursor, which is where a reader that stops within a fetch stands.
        """
        topic = broadcaster.topic
        is_repeat = broadcaster.idempotency.is_repeat
        reading = Reading(topic, current)
        batches = self.history.records(topic, dict(current), target)
        async with contextlib.aclosing(batches):
            async for batch in batches:
                events: list[Event] = []
                for record in batch:
                    partition, next_offset = record.partition, record.offset + 1
                    current[partition] = next_offset
                    if key is None:
                        event = event_of(topic, record, None, reading.after(partition, next_offset))
                    elif record.key is None or record.key.decode() != key:
                        continue
                    else:
                        # A keyed subscriber's ids are partition cursors: no topic id to make.
                        event = event_of(topic, record, Cursor.of(current))
                    # A second copy of an idempotent publish is never delivered (see idempotency).
                    if event.tag is None or not is_repeat(event.tag, event.partition, event.offset):
                        events.append(event)
                if events:
                    yield events
        # Offsets may skip at the end (compaction, markers): the read reached the target.
        current.update(_raise_to(current, target))


def _positions_from(cursor: Cursor, partitions: list[int], key: str | None) -> dict[int, int]:
    """Every partition the subscription reads, at the cursor's offset (0 when it names none).

    A keyed subscription reads only its key's partition, once the topic has partitions.
    """
    positions = dict.fromkeys(partitions, 0)
    for partition, offset in cursor.offsets:
        if key is None or not partitions or partition in positions:
            positions[partition] = offset
    return positions


def _raise_to(offsets: dict[int, int], floor: dict[int, int]) -> dict[int, int]:
    merged = dict(offsets)
    for partition, offset in floor.items():
        merged[partition] = max(merged.get(partition, 0), offset)
    return merged


def _after_ring_event(event: Event, scope: Scope, current: dict[int, int]) -> Cursor:
    # A ring event's own topic cursor is the broadcaster's view, which may be ahead of
    # this page's reading on other partitions: the page's own positions are exact.
    return event.cursor(scope) if scope is Scope.PARTITION else Cursor.of(current)


def _parse_time(since: str) -> datetime | None:
    if "T" not in since or ":" not in since:
        return None
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise BadCursor(f"{since[:40]!r} is neither a cursor nor an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise BadCursor("an RFC 3339 time needs a time zone (Z or ±hh:mm)")
    return moment
