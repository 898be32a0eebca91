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

    def newest_per_key(self) -> tuple[Page, int]:
        """This page with only the newest event of each key (mode=latest), and how many
        were skipped; ``next`` is unchanged, so the reader still moves past all of them."""
        newest = {event.key: event for event in self.events}
        kept = [event for event in self.events if newest[event.key] is event]
        return Page(kept, self.next, self.scope, self.after), len(self.events) - len(kept)

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

    def __init__(self, history: History, scan_limit: int = 10_000) -> None:
        self.history = history
        # Records a page may read from Kafka: a key's page skips the other keys' records,
        # and a key with few events must not make one request scan a whole partition.
        self._scan_limit = scan_limit

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
        self, broadcaster: Broadcaster, subscription: Subscription, start: Cursor, owner: str
    ) -> None:
        """Deliver from ``start`` out of Kafka, then hand ``subscription`` to the live stream.

        ``owner`` (the client's address) may run only so many catch-ups at once.
        """
        key = subscription.key
        outbox = subscription.outbox
        current = _positions_from(start, broadcaster.partitions_for(key), key)
        # From Kafka while the ring does not cover where the reader stands, or holds more
        # after it than the queue takes at once (what arrives meanwhile is the next round).
        while not broadcaster.covers(Cursor.of(current), key) or broadcaster.backlog(
            Cursor.of(current), key, outbox.catch_up_room
        ):
            target = await self._target(broadcaster, current)
            # aclosing: a cancelled catch-up stops its Kafka reader now, not at collection.
            reading = self._read(broadcaster, key, current, target, owner)
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
        self, broadcaster: Broadcaster, key: str | None, after: Cursor, limit: int, owner: str
    ) -> Page:
        """Up to ``limit`` events after ``after``: from Kafka while the ring lacks them.

        A read that scanned its limit of records stops there with what it found, and a
        ``next`` cursor where it stopped (a partial page).
        """
        scope = Scope.PARTITION if key is not None else Scope.TOPIC
        current = _positions_from(after, broadcaster.partitions_for(key), key)
        events: list[Event] = []
        if not broadcaster.covers(after, key) or not _assigned(broadcaster, current):
            begun = dict(current)
            target = await self._target(broadcaster, current)
            reading = self._read(broadcaster, key, current, target, owner)
            async with contextlib.aclosing(reading):
                async for batch in reading:
                    for event in batch:
                        events.append(event)
                        if len(events) == limit:
                            return Page(events, event.cursor(scope), scope, after)
                    scanned = sum(current[p] - begun.get(p, 0) for p in current)
                    if scanned >= self._scan_limit:
                        return Page(events, Cursor.of(current), scope, after)
        for event in broadcaster.events_after(Cursor.of(current), key):
            events.append(event)
            current[event.partition] = event.offset + 1
            if len(events) == limit:
                return Page(events, _after_ring_event(event, scope, current), scope, after)
        head = broadcaster.cursor(key).as_dict()
        return Page(events, Cursor.of(_raise_to(current, head)), scope, after)

    async def _target(self, broadcaster: Broadcaster, current: dict[int, int]) -> dict[int, int]:
        """Where a read from Kafka stops: the broadcaster's positions, or Kafka's ends for a
        topic the consumer does not read yet (created a moment ago)."""
        if _assigned(broadcaster, current):
            return {p: broadcaster.positions[p] for p in current}
        return await self.history.ends(broadcaster.topic, current)

    async def _read(
        self,
        broadcaster: Broadcaster,
        key: str | None,
        current: dict[int, int],
        target: dict[int, int],
        owner: str,
    ) -> AsyncGenerator[list[Event], None]:
        """Events from Kafka between ``current`` and ``target``, a fetch at a time (a fetch
        that holds none of them gives an empty list).

        ``current`` advances past each fetch as it is yielded: every event carries its own
        cursor, which is where a reader that stops within a fetch stands.
        """
        topic = broadcaster.topic
        is_repeat = broadcaster.idempotency.is_repeat
        reading = Reading(topic, current)
        batches = self.history.records(topic, dict(current), target, owner)
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
                yield events
        # Offsets may skip at the end (compaction, markers): the read reached the target.
        current.update(_raise_to(current, target))


def _assigned(broadcaster: Broadcaster, partitions: dict[int, int]) -> bool:
    return all(p in broadcaster.positions for p in partitions)


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
