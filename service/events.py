"""Events: what a client publishes, and what is delivered (records.py maps them to Kafka)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from . import portable
from .cursor import Cursor
from .idempotency import Tag

DEFAULT_TYPE = "message"
# The longest key (schemas/event-in.schema.json says the same): for publishing and reading.
MAX_KEY_CHARS = 256
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_TIMESTAMP_MS = (
    int((datetime(9999, 12, 31, 23, 59, 59, 999000, UTC) - _EPOCH).total_seconds()) * 1000 + 999
)


@dataclass(frozen=True, slots=True)
class EventIn:
    """One event as a client publishes it, already validated."""

    data: Any
    key: str | None = None
    type: str = DEFAULT_TYPE


class Scope(Enum):
    """Which cursor an event's ``id`` carries for a subscriber."""

    TOPIC = "topic"  # every partition: a whole-topic subscription
    PARTITION = "partition"  # the key's partition only: a keyed subscription

    # Members are singletons: hashing by identity keeps the frame caches' lookups in C
    # (Enum's own __hash__ is Python code, paid on every delivery).
    __hash__ = object.__hash__


@dataclass(slots=True, eq=False)
class Event:
    """A record as delivered: decoded once, encoded once per wire format and scope."""

    topic: str
    key: str | None
    type: str
    partition: int
    offset: int
    timestamp_ms: int
    raw_value: bytes
    msgpack_value: bool
    # None when only its text is known (``_topic_id``): a replay needs the text of every
    # event's cursor, the cursor itself seldom (see topic_cursor).
    _topic_cursor: Cursor | None
    tag: Tag | None = None
    # Whether raw_value is JSON Herald wrote (see CHECKED_HEADER).
    checked_json: bool = False
    _data: Any = None
    _decoded: bool = False
    # Its ids once made, and its frames by what they are (see wire.py: kind, format, scope).
    # Plain slots and a dict made on first use: a replay makes an event per record read, and
    # every container it holds is one more object for the cycle collector to walk.
    _topic_id: str | None = None
    _partition_id: str | None = None
    encoded: dict[tuple[str, Any, Scope], bytes | str] | None = None
    # The W3C traceparent its record carries, if any (see tracing.py).
    trace: bytes | None = None

    @property
    def data(self) -> Any:
        if not self._decoded:
            self._data = portable.decode_value(self.raw_value, self.msgpack_value)
            self._decoded = True
        return self._data

    @property
    def topic_cursor(self) -> Cursor:
        """The position just after this event in every partition of its topic."""
        cursor = self._topic_cursor
        if cursor is None:
            assert self._topic_id is not None  # one of them is always set (event_from_record)
            cursor = self._topic_cursor = Cursor.decode(self.topic, self._topic_id)
        return cursor

    def cursor(self, scope: Scope) -> Cursor:
        """The position just after this event, for a subscriber of ``scope``."""
        if scope is Scope.TOPIC:
            return self.topic_cursor
        return Cursor.after(self.partition, self.offset)

    def id(self, scope: Scope) -> str:
        if scope is Scope.TOPIC:
            text = self._topic_id
            if text is None:
                text = self._topic_id = self.topic_cursor.encode(self.topic)
        else:
            text = self._partition_id
            if text is None:
                text = self._partition_id = self.cursor(scope).encode(self.topic)
        return text

    def frames(self) -> dict[tuple[str, Any, Scope], bytes | str]:
        """Where its encodings are kept (see wire.py), made on first use."""
        encoded = self.encoded
        if encoded is None:
            encoded = self.encoded = {}
        return encoded

    @property
    def time(self) -> str:
        return _time_text(self.timestamp_ms)

    def data_json(self) -> str | None:
        """``data`` as the JSON text stored in Kafka, when Herald wrote it; else None.

        Still refused: text that is not UTF-8 or holds a line break (neither of which
        Herald writes), which would break a WebSocket text frame or an SSE frame.
        """
        if not self.checked_json:
            return None
        try:
            text = self.raw_value.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return None if "\n" in text or "\r" in text else text

    def raised_to(self, floor: dict[int, int]) -> Cursor | None:
        """This event's topic cursor raised to ``floor`` on every partition; None if no raise.

        A subscriber that resumed from a cursor of another instance (whose partitions were
        interleaved differently) may hold a position ahead of this instance's cursor on some
        partition: its ids must never go back below what it already has.
        """
        own = self.topic_cursor.as_dict()
        if all(own.get(partition, 0) >= offset for partition, offset in floor.items()):
            return None
        return Cursor.of({p: max(own.get(p, 0), floor.get(p, 0)) for p in own.keys() | floor})

    def as_dict(self, scope: Scope, event_id: str | None = None) -> dict[str, Any]:
        """The event as delivered. ``partition`` and ``offset`` are what its publish was
        answered with (the offset as a string: JavaScript numbers stop at 2**53)."""
        return {
            "id": event_id or self.id(scope),
            "topic": self.topic,
            "key": self.key,
            "partition": self.partition,
            "offset": str(self.offset),
            "type": self.type,
            "time": self.time,
            "data": self.data,
        }


class EventRun:
    """Consecutive events of one topic for subscribers of one scope, fanned out together:
    what a subscriber with nothing waiting gets in one write. Its bytes are built once per
    kind of connection (``encoded``), like an Event's, and shared."""

    __slots__ = ("cursor", "encoded", "events", "scope")

    def __init__(self, events: list[Event], scope: Scope) -> None:
        self.events = events
        self.scope = scope
        # The id of the last event: where its subscribers stand once it is written.
        self.cursor = events[-1].id(scope)
        self.encoded: dict[str, bytes] = {}

    def after(self, skip_below: dict[int, int]) -> EventRun | None:
        """The events not covered by ``skip_below`` (next offset per partition), if any."""
        kept = [e for e in self.events if e.offset >= skip_below.get(e.partition, -1)]
        if len(kept) == len(self.events):
            return self
        return EventRun(kept, self.scope) if kept else None


# Events read together mostly share a second: its text is made once (a replay of a busy
# topic meets thousands of distinct milliseconds a second, too many to keep each).
_SECONDS: dict[int, str] = {}
_SECONDS_KEPT = 4096


def _time_text(timestamp_ms: int) -> str:
    # Integer arithmetic stays exact in any year; a producer may set any int64
    # timestamp (or -1 for none), so clamp to what RFC 3339 can say.
    seconds, milliseconds = divmod(min(max(timestamp_ms, 0), _MAX_TIMESTAMP_MS), 1000)
    text = _SECONDS.get(seconds)
    if text is None:
        if len(_SECONDS) >= _SECONDS_KEPT:
            _SECONDS.clear()
        moment = _EPOCH + timedelta(seconds=seconds)
        text = _SECONDS[seconds] = moment.isoformat(timespec="seconds").removesuffix("+00:00")
    return f"{text}.{milliseconds:03d}Z"
