"""Per-connection outbound queue: bounded, with one writer that is the only sender."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

from .events import Event, EventRun, Scope
from .metrics import Latency, Tally
from .subscription import Subscription
from .wire import Format, event_frame, event_ws_frame, own_event_frame, skipped_frame, ws_frame

# What a drain yields: frames of the wire format, or whole WebSocket frames.
_F = TypeVar("_F", bytes, str, bytes | str)


class DirectWrite(Protocol):
    """A connection's socket, written from the fan-out itself (see transports/fast_path.py)."""

    def deliver(self, run: EventRun) -> bool:
        """Write the frames of ``run`` now if the socket takes them at once; else False."""
        ...

    def abort(self) -> None:
        """Drop the connection now, with whatever it still buffers (a stalled client)."""
        ...


class Outbox:
    """Frames waiting for one connection's writer.

    While nothing waits, the writer is not inside a write and the connection has a
    ``direct`` socket, an event skips the queue: its frame is written at once, with no task
    woken (the cheapest delivery there is). Order holds because only an empty outbox does so.

    At most ``capacity`` events wait; one more marks the outbox ``overflowed`` (the
    connection is then closed as lagging with its last cursor) instead of growing or
    silently dropping. Control frames (acks, errors) are few and not counted.
    """

    __slots__ = (
        "__weakref__",
        "_holds",
        "_items",
        "_latest",
        "_live_ts",
        "_pending_events",
        "_room",
        "_waiter",
        "capacity",
        "closed",
        "delivered",
        "direct",
        "drained_at",
        "drained_events",
        "drained_live_ts",
        "fmt",
        "latency",
        "overflowed",
        "superseded",
        "writing_since",
    )

    def __init__(
        self,
        fmt: Format,
        capacity: int,
        latency: Latency | None = None,
        superseded: Tally | None = None,
    ) -> None:
        self.fmt = fmt
        self.capacity = capacity
        self.overflowed = False
        self.closed = False
        # An event waits with its subscriber's own id when that differs from the shared one.
        # A list, not a deque: an empty deque holds a 64-slot block (~700 bytes per
        # connection), and a drain takes everything anyway.
        self._items: list[tuple[Subscription, Event, str | None] | _Latest | bytes | str] = []
        self._pending_events = 0
        # How many of the frames the last drain returned were events (for metrics), and
        # how many events went to the connection in all (for its close line in the log).
        self.drained_events = 0
        self.delivered = 0
        # The writer's wait, when it waits: one future per wake-up, no timer (see Pulse).
        self._waiter: asyncio.Future[None] | None = None
        # A catch-up read waiting for room (see room_for_catch_up); None while none waits.
        self._room: asyncio.Future[None] | None = None
        # For the connection's Pulse (time.monotonic): when the writer last took frames, and
        # when the write in progress began (0.0 when the writer is not inside a write).
        self.drained_at = time.monotonic()
        self.writing_since = 0.0
        self.direct: DirectWrite | None = None
        self._holds = 0
        # For mode=latest subscriptions: the event waiting per (subscription, key), if any.
        self._latest: dict[tuple[Subscription, str | None], _Latest] | None = None
        # Where this connection's writes count their latency, and its superseded events.
        self.latency = latency
        self.superseded = superseded
        # The Kafka timestamp of the oldest live (fanned-out) event waiting, 0 if none; the
        # last drain's, until its write is done (see written).
        self._live_ts = 0
        self.drained_live_ts = 0

    def put_run(self, subscription: Subscription, run: EventRun) -> bool:
        """Hand over events from the fan-out: written at once when the connection is idle
        and has a ``direct`` socket, else queued. False when the subscriber is lagging."""
        socket = self.direct
        if (
            socket is not None
            and subscription.floor is None
            and not self._items
            and not self.writing_since
            and not self._holds
            and not self.overflowed
            and not self.closed
            and socket.deliver(run)
        ):
            subscription.cursor = run.cursor
            self.drained_at = _monotonic()
            self.delivered += len(run.events)
            if self.latency is not None:
                self.latency.add(run.events[0].timestamp_ms, len(run.events))
            return True
        if not self._live_ts:
            self._live_ts = run.events[0].timestamp_ms
        put_event = self.put_event
        return all(put_event(subscription, event) for event in run.events)

    def put_event(self, subscription: Subscription, event: Event) -> bool:
        """Queue ``event``; False when the outbox overflowed (the subscriber is lagging)."""
        if self.overflowed or self.closed:
            return False
        # The raised id is fixed now, in queue order: a floor set at a hand-over must not
        # touch the catch-up events still waiting ahead of it.
        own_id = subscription.own_id(event) if subscription.floor is not None else None
        if subscription.latest:
            self._put_latest(subscription, event, own_id)
        else:
            if self._pending_events >= self.capacity:
                self._overflow()
                return False
            self._items.append((subscription, event, own_id))
            self._pending_events += 1
        if self.overflowed:
            return False
        if self._waiter is not None:
            self.wake()
        return True

    def _put_latest(self, subscription: Subscription, event: Event, own_id: str | None) -> None:
        """Queue ``event`` for a ``mode=latest`` subscription: an event of the same key still
        waiting is dropped (counted as skipped on this one), so what waits is the newest per
        key. The new one goes to the end: ids keep growing in queue order."""
        waiting = self._latest.get((subscription, event.key)) if self._latest else None
        skipped = 0
        if waiting is not None and waiting.event is not None:
            skipped = waiting.skipped + 1
            waiting.event = None
            self._pending_events -= 1
            if self.superseded is not None:
                self.superseded.count += 1
        elif self._pending_events >= self.capacity:
            self._overflow()
            return
        latest = _Latest(subscription, event, own_id, skipped)
        if self._latest is None:
            self._latest = {}
        self._latest[(subscription, event.key)] = latest
        self._items.append(latest)
        self._pending_events += 1

    def _overflow(self) -> None:
        self.overflowed = True
        self.wake()
        self._make_room()

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Every event queues meanwhile: frames the connection puts first (a ``subscribed``
        ahead of its replayed events) must not be overtaken by a direct write."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1

    def wake(self) -> None:
        """Wake the writer now, whatever is queued (it has something else to look at)."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put_catch_up(self, subscription: Subscription, events: list[Event]) -> int:
        """Queue the first of ``events`` that fit in the catch-up half of the queue; how many
        did. A read puts a whole fetch at a time, and waits (``room_for_catch_up``) for the
        writer to make room for the rest.

        Only half the capacity is used this way, leaving the rest for live events of the
        connection's other subscriptions.
        """
        if self.overflowed or self.closed:
            return 0
        if subscription.latest:
            # Conflated as they come: the queue holds at most one event per key.
            for event in events:
                raised = subscription.own_id(event) if subscription.floor is not None else None
                self._put_latest(subscription, event, raised)
                if self.overflowed:
                    return 0
            if self._waiter is not None:
                self.wake()
            return len(events)
        room = max(1, self.capacity // 2) - self._pending_events
        if room <= 0:
            return 0
        taken = events if len(events) <= room else events[:room]
        if subscription.floor is None:
            self._items.extend([(subscription, event, None) for event in taken])
        else:
            own_id = subscription.own_id
            self._items.extend([(subscription, event, own_id(event)) for event in taken])
        self._pending_events += len(taken)
        if self._waiter is not None:
            self.wake()
        return len(taken)

    @property
    def catch_up_room(self) -> int:
        """How many events a catch-up may still queue now (see put_catch_up)."""
        return max(1, self.capacity // 2) - self._pending_events

    async def room_for_catch_up(self) -> bool:
        """Wait until put_catch_up would take an event; False once the outbox is closed or
        overflowed (nothing more goes in)."""
        while self._pending_events >= max(1, self.capacity // 2):
            if self.overflowed or self.closed:
                return False
            room = self._room = asyncio.get_running_loop().create_future()
            await room
        return not (self.overflowed or self.closed)

    def _make_room(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

    def put_control(self, frame: bytes | str) -> None:
        if not self.closed:
            self._items.append(frame)
            self.wake()

    def put_control_first(self, frames: list[bytes | str], subscription: Subscription) -> None:
        """Queue ``frames`` ahead of every event already queued for ``subscription``."""
        if self.closed:
            return
        index = next(
            (
                i
                for i, item in enumerate(self._items)
                if (isinstance(item, tuple) and item[0] is subscription)
                or (isinstance(item, _Latest) and item.subscription is subscription)
            ),
            len(self._items),
        )
        for offset, frame in enumerate(frames):
            self._items.insert(index + offset, frame)
        self.wake()

    def close(self) -> None:
        """Wake the writer for good: it sends nothing more."""
        self.closed = True
        self.wake()
        self._make_room()

    @property
    def pending(self) -> int:
        """Frames waiting (events and control frames)."""
        return len(self._items)

    @property
    def ready(self) -> bool:
        """Whether the writer has something to do: frames waiting, or a close to send."""
        return bool(self._items) or self.overflowed or self.closed

    async def wait(self, within: float | None = None) -> bool:
        """Wait until something is queued (or the outbox closed); False on timeout."""
        if self.ready:
            return True
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        if within is None:
            await waiter
            return True
        timer = loop.call_later(within, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if self._waiter is waiter:
                self._waiter = None
        return self.ready

    def drain(self) -> list[bytes | str]:
        """Take every waiting frame, advancing each subscription's cursor as its event goes."""
        return self._drain(event_frame, own_event_frame, _as_is)

    def drain_ws_frames(self) -> list[bytes]:
        """``drain`` as whole WebSocket frames, ready for the socket (event frames are shared)."""
        return self._drain(event_ws_frame, _own_event_ws_frame, ws_frame)

    def _drain(
        self,
        shared: Callable[[Event, Format, Scope], _F],
        own: Callable[[Event, Format, Scope, str], _F],
        control: Callable[[bytes | str], _F],
    ) -> list[_F]:
        frames: list[_F] = []
        items, self._items = self._items, []
        fmt = self.fmt
        for item in items:
            if isinstance(item, tuple):
                subscription, event, own_id = item
            elif isinstance(item, _Latest):
                if item.event is None:
                    continue  # a newer event of its key took its place
                subscription, event, own_id = item.subscription, item.event, item.own_id
                if item.skipped:
                    skipped = skipped_frame(fmt, subscription.topic, event.key, item.skipped)
                    frames.append(control(skipped))
            else:
                frames.append(control(item))
                continue
            scope = subscription.scope
            if own_id is None:
                frames.append(shared(event, fmt, scope))
                subscription.cursor = event.id(scope)
            else:
                frames.append(own(event, fmt, scope, own_id))
                subscription.cursor = own_id
        self._after_drain()
        return frames

    def drain_events(self) -> list[Event]:
        """Take the waiting events themselves (for a long-poll, which renders its own page)."""
        events = [
            item[1] if isinstance(item, tuple) else item.event
            for item in self._items
            if isinstance(item, tuple) or (isinstance(item, _Latest) and item.event is not None)
        ]
        self._items.clear()
        self._after_drain()
        return events  # type: ignore[return-value]

    def written(self) -> None:
        """The frames of the last drain reached the socket: their live events count their
        latency (once per write, see metrics.Latency)."""
        if self.drained_live_ts and self.latency is not None:
            self.latency.add(self.drained_live_ts, self.drained_events)
        self.drained_live_ts = 0

    def _after_drain(self) -> None:
        self.drained_live_ts, self._live_ts = self._live_ts, 0
        self._latest = None
        self.drained_at = time.monotonic()
        self.drained_events = self._pending_events
        self.delivered += self._pending_events
        self._pending_events = 0
        if self._room is not None:
            self._make_room()


_monotonic = time.monotonic


class _Latest:
    """A waiting event of a ``mode=latest`` subscription: dropped (``event`` None) when a
    newer one of its key arrives, which then counts it among those ``skipped``."""

    __slots__ = ("event", "own_id", "skipped", "subscription")

    def __init__(
        self, subscription: Subscription, event: Event, own_id: str | None, skipped: int
    ) -> None:
        self.subscription = subscription
        self.event: Event | None = event
        self.own_id = own_id
        self.skipped = skipped


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _as_is(frame: bytes | str) -> bytes | str:
    return frame


def _own_event_ws_frame(event: Event, fmt: Format, scope: Scope, own_id: str) -> bytes:
    return ws_frame(own_event_frame(event, fmt, scope, own_id))
