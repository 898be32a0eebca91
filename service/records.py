"""Events as Kafka records: what a published event is written as, and what a consumed record
is delivered as.

A record's value is the event's ``data`` as JSON (readable by any other Kafka consumer), or
msgpack when the data holds binary that JSON cannot carry; the ``type`` travels in a header.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import msgpack

from .cursor import Cursor
from .errors import Invalid
from .events import DEFAULT_TYPE, Event, EventIn
from .idempotency import HEADER as IDEMPOTENCY_HEADER
from .idempotency import Tag
from .kafka import Record
from .tracing import TRACEPARENT

TYPE_HEADER = "herald-type"
CONTENT_TYPE_HEADER = "content-type"
MSGPACK = "application/msgpack"
# Set by Herald on a value it wrote as compact JSON from validated data: delivered as it is
# stored, without decoding and re-encoding it. Records of other producers are checked.
CHECKED_HEADER = "herald-data"
CHECKED_JSON = b"json"


def to_record(
    event: EventIn, tag: Tag | None = None
) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """Kafka key, value and headers for ``event``."""
    headers = [(TYPE_HEADER, event.type.encode())]
    if tag is not None:
        headers.append((IDEMPOTENCY_HEADER, tag.header()))
    try:
        value = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False).encode()
        headers.append((CHECKED_HEADER, CHECKED_JSON))
    except TypeError:
        # Binary data from a msgpack client: keep it binary rather than mangle it.
        value = msgpack.packb(event.data, use_bin_type=True)
        headers.append((CONTENT_TYPE_HEADER, MSGPACK.encode()))
    except RecursionError:
        raise Invalid(
            "data is nested too deeply", [{"path": "/data", "message": "nested too deeply"}]
        ) from None
    key = event.key.encode() if event.key is not None else None
    return key, value, headers


def event_of(
    topic: str, record: Record, topic_cursor: Cursor | None, topic_id: str | None = None
) -> Event:
    """The Event of a consumed record whose topic-wide id is ``topic_cursor``, or its text
    ``topic_id`` (one of them, or both)."""
    return event_from_record(
        topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        record.headers,
        topic_cursor,
        topic_id,
    )


def event_from_record(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    topic_cursor: Cursor | None,
    topic_id: str | None = None,
) -> Event:
    """Map one Kafka record to an Event whose topic-wide id is ``topic_cursor``, or its text
    ``topic_id`` (one of them, or both)."""
    if topic_cursor is None and topic_id is None:
        raise ValueError("an event needs its topic cursor or the cursor's text")
    event_type = DEFAULT_TYPE
    is_msgpack = False
    checked_json = False
    tag = None
    trace = None
    for name, header_value in headers:
        if name == TYPE_HEADER:
            event_type = header_value.decode("utf-8", errors="replace")
        elif name == CONTENT_TYPE_HEADER:
            is_msgpack = header_value == MSGPACK.encode()
        elif name == IDEMPOTENCY_HEADER:
            tag = Tag.parse(header_value)
        elif name == CHECKED_HEADER:
            checked_json = header_value == CHECKED_JSON
        elif name == TRACEPARENT:
            trace = header_value
    # In field order, not by keyword: one Event per record read, and binding a dozen
    # keywords costs a good part of making it.
    return Event(
        topic,
        key.decode("utf-8", errors="replace") if key is not None else None,
        event_type,
        partition,
        offset,
        timestamp_ms,
        value if value is not None else b"null",
        is_msgpack,
        topic_cursor,
        tag,
        checked_json and not is_msgpack,
        None,
        False,
        topic_id,
        None,
        None,
        trace,
    )
