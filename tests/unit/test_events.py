"""service/events.py: events as published, as Kafka records, and as delivered."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from service.cursor import Cursor
from service.errors import HeraldError
from service.events import DEFAULT_TYPE, Event, EventIn, Scope
from service.portable import decode_value
from service.records import CONTENT_TYPE_HEADER, MSGPACK, TYPE_HEADER, event_from_record, to_record

TOPIC = "orders"
TIMESTAMP_MS = 1714564800123  # 2024-05-01T12:00:00.123Z
RFC3339_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EVENT_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "event.schema.json").read_text()
)


def record_event(
    event_in: EventIn,
    *,
    partition: int = 1,
    offset: int = 41,
    timestamp_ms: int = TIMESTAMP_MS,
    topic_cursor: Cursor | None = None,
) -> Event:
    key, value, headers = to_record(event_in)
    return event_from_record(
        TOPIC,
        partition,
        offset,
        timestamp_ms,
        key,
        value,
        headers,
        topic_cursor if topic_cursor is not None else Cursor.of({0: 7, partition: offset + 1}),
    )


def foreign_event(value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> Event:
    """A record some other Kafka producer wrote: no Herald headers unless given."""
    return event_from_record(
        TOPIC, 0, 0, TIMESTAMP_MS, None, value, headers or [], Cursor.after(0, 0)
    )


def nested_list(depth: int) -> list[Any]:
    outer: list[Any] = []
    inner = outer
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    return outer


# -- EventIn.to_record ----------------------------------------------------------------------


def test_to_record_writes_data_as_compact_json() -> None:
    _, value, _ = to_record(EventIn(data={"text": "hello", "n": [1, 2]}))
    assert value == b'{"text":"hello","n":[1,2]}'


def test_to_record_keeps_non_ascii_as_utf8() -> None:
    _, value, _ = to_record(EventIn(data={"text": "héllo ✓"}))
    assert value == '{"text":"héllo ✓"}'.encode()


def test_to_record_carries_the_type_in_the_herald_type_header() -> None:
    _, _, headers = to_record(EventIn(data=1, type="order.created"))
    assert dict(headers)[TYPE_HEADER] == b"order.created"


def test_to_record_defaults_the_type_to_message() -> None:
    _, _, headers = to_record(EventIn(data=1))
    assert dict(headers)[TYPE_HEADER] == DEFAULT_TYPE.encode()
    assert DEFAULT_TYPE == "message"


def test_to_record_encodes_the_key_as_utf8() -> None:
    key, _, _ = to_record(EventIn(data=1, key="user-42é"))
    assert key == "user-42é".encode()


def test_to_record_without_key_has_no_kafka_key() -> None:
    key, _, _ = to_record(EventIn(data=1))
    assert key is None


def test_to_record_writes_null_data_as_json_null() -> None:
    _, value, _ = to_record(EventIn(data=None))
    assert value == b"null"


def test_to_record_with_binary_data_writes_msgpack_and_says_so_in_a_header() -> None:
    data = {"blob": b"\x00\xffbinary", "n": 1}
    _, value, headers = to_record(EventIn(data=data, type="file"))
    assert msgpack.unpackb(value, raw=False) == data
    assert (CONTENT_TYPE_HEADER, MSGPACK.encode()) in headers
    assert (TYPE_HEADER, b"file") in headers


def test_to_record_of_json_data_has_no_content_type_header() -> None:
    _, _, headers = to_record(EventIn(data={"a": 1}))
    assert all(name != CONTENT_TYPE_HEADER for name, _ in headers)


def test_to_record_of_too_deeply_nested_data_fails_as_a_client_error() -> None:
    # Regression: events.py EventIn.to_record used to catch only TypeError around json.dumps; data
    # nested ~1000 deep (a msgpack body can carry up to 1024) raises RecursionError, which no
    # transport maps to problem+json: a client's body becomes a 500.
    with contextlib.suppress(HeraldError):
        to_record(EventIn(data=nested_list(1010)))


# -- event_from_record ----------------------------------------------------------------------


def test_record_round_trip_keeps_key_type_and_data() -> None:
    event = record_event(EventIn(data={"text": "hi"}, key="user-42", type="chat:typing"))
    assert (event.topic, event.key, event.type, event.data) == (
        TOPIC,
        "user-42",
        "chat:typing",
        {"text": "hi"},
    )


def test_record_round_trip_of_binary_data_stays_bytes() -> None:
    data = {"blob": b"\x01\x02", "list": [b"x", "y"]}
    event = record_event(EventIn(data=data))
    assert event.msgpack_value
    assert event.data == data


def test_record_round_trip_keeps_partition_and_offset() -> None:
    event = record_event(EventIn(data=1), partition=2, offset=99)
    assert (event.partition, event.offset) == (2, 99)


def test_record_without_type_header_is_a_message() -> None:
    assert foreign_event(b"{}").type == "message"


def test_record_without_key_has_key_none() -> None:
    assert record_event(EventIn(data=1)).key is None


def test_tombstone_record_has_null_data() -> None:
    assert foreign_event(None).data is None


def test_foreign_json_value_arrives_as_json() -> None:
    assert foreign_event(b'{"a": [1, 2]}').data == {"a": [1, 2]}


def test_foreign_non_json_value_arrives_as_text() -> None:
    assert foreign_event(b"plain text, not JSON").data == "plain text, not JSON"


def test_foreign_invalid_utf8_value_arrives_as_text_with_replacement() -> None:
    assert foreign_event(b"ok \xff").data == "ok \ufffd"


def test_value_claimed_msgpack_but_not_msgpack_arrives_as_text() -> None:
    event = foreign_event(b"\xc1 not msgpack", [(CONTENT_TYPE_HEADER, MSGPACK.encode())])
    assert event.data == "\ufffd not msgpack"


def test_other_content_type_header_is_not_msgpack() -> None:
    event = foreign_event(b'"json"', [(CONTENT_TYPE_HEADER, b"application/json")])
    assert not event.msgpack_value
    assert event.data == "json"


def test_foreign_deeply_nested_json_value_arrives_as_text() -> None:
    # Regression: events.py decode_value used to catch only ValueError around json.loads; a record
    # value nested deeper than the recursion limit raises RecursionError from Event.data, so
    # every writer draining that event (and every snapshot holding it) fails: a poison record.
    value = b"[" * 5000 + b"]" * 5000
    assert isinstance(decode_value(value, False), str)
    assert foreign_event(value).data == value.decode()


def test_data_is_decoded_once() -> None:
    event = foreign_event(b'{"a": 1}')
    assert event.data is event.data


# -- ids ------------------------------------------------------------------------------------


def test_partition_scope_id_is_the_cursor_after_the_record() -> None:
    event = record_event(EventIn(data=1), partition=2, offset=99)
    assert Cursor.decode(TOPIC, event.id(Scope.PARTITION)) == Cursor.after(2, 99)


def test_topic_scope_id_is_the_topic_cursor() -> None:
    topic_cursor = Cursor.of({0: 7, 1: 42, 2: 3})
    event = record_event(EventIn(data=1), partition=1, offset=41, topic_cursor=topic_cursor)
    assert Cursor.decode(TOPIC, event.id(Scope.TOPIC)) == topic_cursor


def test_an_event_made_from_its_cursor_text_has_that_id_and_that_cursor() -> None:
    topic_cursor = Cursor.of({0: 7, 1: 42, 2: 3})
    key, value, headers = to_record(EventIn(data=1))
    text = topic_cursor.encode(TOPIC)
    event = event_from_record(TOPIC, 1, 41, TIMESTAMP_MS, key, value, headers, None, text)
    assert event.id(Scope.TOPIC) == text
    assert event.topic_cursor == topic_cursor
    assert event.cursor(Scope.TOPIC) == topic_cursor
    assert event.raised_to({0: 9}) == Cursor.of({0: 9, 1: 42, 2: 3})


def test_an_event_needs_its_topic_cursor_or_its_text() -> None:
    key, value, headers = to_record(EventIn(data=1))
    with pytest.raises(ValueError, match="topic cursor"):
        event_from_record(TOPIC, 1, 41, TIMESTAMP_MS, key, value, headers, None)


def test_ids_are_computed_once_per_scope() -> None:
    event = record_event(EventIn(data=1))
    assert event.id(Scope.TOPIC) is event.id(Scope.TOPIC)
    assert event.id(Scope.PARTITION) is event.id(Scope.PARTITION)


# -- time and the delivered shape -----------------------------------------------------------


def test_time_is_rfc3339_utc_with_milliseconds_and_z() -> None:
    assert record_event(EventIn(data=1)).time == "2024-05-01T12:00:00.123Z"


def test_time_of_a_whole_second_keeps_the_milliseconds() -> None:
    assert record_event(EventIn(data=1), timestamp_ms=1714564800000).time == (
        "2024-05-01T12:00:00.000Z"
    )


def assert_time_names(timestamp_ms: int) -> None:
    time = record_event(EventIn(data=1), timestamp_ms=timestamp_ms).time
    assert RFC3339_MS_UTC.fullmatch(time)
    moment = datetime.fromisoformat(time.replace("Z", "+00:00"))
    assert moment == EPOCH + timedelta(milliseconds=timestamp_ms)


@settings(max_examples=200, deadline=None)
@given(timestamp_ms=st.integers(min_value=0, max_value=4102444800000))  # up to 2100
def test_time_names_exactly_the_record_timestamp_this_century(timestamp_ms: int) -> None:
    assert_time_names(timestamp_ms)


@settings(max_examples=200, deadline=None)
@given(timestamp_ms=st.integers(min_value=0, max_value=253402300799999))  # up to 9999
def test_time_names_exactly_the_record_timestamp_in_any_year(timestamp_ms: int) -> None:
    # Regression: events.py Event.time used to go through float seconds (timestamp_ms / 1000):
    # past 2**33 s (year 2242) the float is coarser than a microsecond and the millisecond
    # comes out one too low (e.g. 15186263693744 gives .743). Kafka CreateTime is whatever
    # the producer says, so such timestamps can arrive.
    assert_time_names(timestamp_ms)


def test_time_of_a_timestamp_beyond_year_9999_does_not_break_the_event() -> None:
    # Regression: events.py Event.time used to raise ValueError for a record timestamp past year
    # 9999 (a producer may set any int64), so as_dict, every frame and every snapshot holding
    # the event fail: a poison record. It should clamp or fall back instead.
    event = record_event(EventIn(data=1), timestamp_ms=2**62)
    assert RFC3339_MS_UTC.fullmatch(event.as_dict(Scope.TOPIC)["time"])


def test_as_dict_has_the_delivered_event_fields() -> None:
    event = record_event(EventIn(data={"x": 1}, key="k", type="t"))
    assert event.as_dict(Scope.PARTITION) == {
        "id": event.id(Scope.PARTITION),
        "topic": TOPIC,
        "key": "k",
        "partition": 1,
        "offset": "41",
        "type": "t",
        "time": "2024-05-01T12:00:00.123Z",
        "data": {"x": 1},
    }


def test_as_dict_matches_the_event_schema_in_both_scopes() -> None:
    validator = Draft202012Validator(EVENT_SCHEMA)
    for event in (record_event(EventIn(data=[1], key="k")), foreign_event(b"text")):
        for scope in Scope:
            assert list(validator.iter_errors(event.as_dict(scope))) == []
