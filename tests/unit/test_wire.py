"""service/wire.py: each event is encoded once per format and scope; client frames parse or
raise Malformed."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sse_starlette import ServerSentEvent

from service.cursor import Cursor
from service.errors import Malformed
from service.events import Event, EventIn, Scope
from service.records import CHECKED_HEADER, CHECKED_JSON, event_from_record, to_record
from service.wire import (
    BATCH_BYTES,
    Format,
    batch_frame,
    batches,
    decode_message,
    dump_json,
    encode_message,
    event_frame,
    event_ws_frame,
    parse_msgpack,
    sse_event_frame,
    sse_frame,
    ws_frame,
)

TOPIC = "orders"


def make_event(
    data: Any = None, *, key: str | None = "user-42", type: str = "order.created"
) -> Event:
    record_key, value, headers = to_record(
        EventIn(data={"text": "hi"} if data is None else data, key=key, type=type)
    )
    # A topic cursor over several partitions, so the two scopes give different ids.
    return event_from_record(
        TOPIC, 1, 41, 1714564800123, record_key, value, headers, Cursor.of({0: 7, 1: 42})
    )


def parse_sse(frame: bytes) -> dict[str, list[str]]:
    text = frame.decode()
    assert text.endswith("\r\n\r\n"), "an SSE event ends with a blank line"
    fields: dict[str, list[str]] = {}
    for line in text[: -len("\r\n\r\n")].split("\r\n"):
        name, _, value = line.partition(": ")
        fields.setdefault(name, []).append(value)
    return fields


# -- event frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("scope", list(Scope))
def test_event_frame_is_computed_once_and_shared(fmt: Format, scope: Scope) -> None:
    event = make_event()
    assert event_frame(event, fmt, scope) is event_frame(event, fmt, scope)


def test_event_frames_differ_by_scope_in_their_id() -> None:
    event = make_event()
    topic_frame = json.loads(event_frame(event, Format.JSON, Scope.TOPIC))
    partition_frame = json.loads(event_frame(event, Format.JSON, Scope.PARTITION))
    assert topic_frame["id"] == event.id(Scope.TOPIC)
    assert partition_frame["id"] == event.id(Scope.PARTITION)
    assert topic_frame["id"] != partition_frame["id"]


@pytest.mark.parametrize("scope", list(Scope))
def test_json_frame_is_the_event_with_op_event_first(scope: Scope) -> None:
    event = make_event()
    frame = event_frame(event, Format.JSON, scope)
    assert isinstance(frame, str)
    assert frame.startswith('{"op":"event",')
    parsed = json.loads(frame)
    assert next(iter(parsed)) == "op"
    assert parsed == {"op": "event", **event.as_dict(scope)}


def test_json_frame_has_no_duplicate_keys() -> None:
    pairs = json.loads(
        event_frame(make_event(), Format.JSON, Scope.TOPIC), object_pairs_hook=lambda p: p
    )
    names = [name for name, _ in pairs]
    expected = {"op", "id", "topic", "key", "partition", "offset", "type", "time", "data"}
    assert sorted(names) == sorted(expected)


@pytest.mark.parametrize("scope", list(Scope))
def test_msgpack_frame_unpacks_to_the_event_with_op(scope: Scope) -> None:
    event = make_event()
    frame = event_frame(event, Format.MSGPACK, scope)
    assert isinstance(frame, bytes)
    assert msgpack.unpackb(frame, raw=False) == {"op": "event", **event.as_dict(scope)}


@pytest.mark.parametrize("scope", list(Scope))
def test_sse_frame_has_cursor_id_type_event_and_json_data(scope: Scope) -> None:
    event = make_event()
    frame = event_frame(event, Format.SSE, scope)
    assert isinstance(frame, bytes)
    fields = parse_sse(frame)
    assert fields["id"] == [event.id(scope)]
    assert fields["event"] == ["order.created"]
    assert len(fields["data"]) == 1
    assert json.loads(fields["data"][0]) == event.as_dict(scope)


def test_sse_frame_keeps_line_breaks_in_data_inside_one_data_line() -> None:
    event = make_event({"text": "one\ntwo\r\nthree\rfour\u2028five"})
    fields = parse_sse(event_frame(event, Format.SSE, Scope.TOPIC))
    assert len(fields["data"]) == 1
    assert json.loads(fields["data"][0])["data"] == {"text": "one\ntwo\r\nthree\rfour\u2028five"}


def test_sse_frame_of_a_foreign_type_with_a_newline_stays_one_event() -> None:
    # Types are validated on publish, but another producer may write any header.
    event = event_from_record(
        TOPIC, 0, 0, 0, None, b"1", [("herald-type", b"evil\ndata: injected")], Cursor()
    )
    fields = parse_sse(event_frame(event, Format.SSE, Scope.TOPIC))
    assert len(fields["event"]) == 1
    assert len(fields["data"]) == 1
    assert json.loads(fields["data"][0])["data"] == 1


def test_binary_data_is_base64_in_json_frames() -> None:
    event = make_event({"blob": b"\x00\xff"})
    parsed = json.loads(event_frame(event, Format.JSON, Scope.TOPIC))
    assert parsed["data"] == {"blob": base64.b64encode(b"\x00\xff").decode()}


def test_binary_data_is_base64_in_sse_frames() -> None:
    event = make_event({"blob": b"\x00\xff"})
    fields = parse_sse(event_frame(event, Format.SSE, Scope.TOPIC))
    assert json.loads(fields["data"][0])["data"] == {"blob": "AP8="}


def test_binary_data_stays_bytes_in_msgpack_frames() -> None:
    event = make_event({"blob": b"\x00\xff"})
    unpacked = msgpack.unpackb(event_frame(event, Format.MSGPACK, Scope.TOPIC), raw=False)
    assert unpacked["data"] == {"blob": b"\x00\xff"}


def test_non_ascii_data_is_sent_unescaped() -> None:
    frame = event_frame(make_event({"text": "héllo"}), Format.JSON, Scope.TOPIC)
    assert isinstance(frame, str)
    assert "héllo" in frame


# -- control messages -----------------------------------------------------------------------


def test_encode_message_json_is_compact_text() -> None:
    assert encode_message({"op": "ack", "ref": 1}, Format.JSON) == '{"op":"ack","ref":1}'


def test_encode_message_msgpack_is_binary() -> None:
    frame = encode_message({"op": "ack", "ref": 1}, Format.MSGPACK)
    assert isinstance(frame, bytes)
    assert msgpack.unpackb(frame, raw=False) == {"op": "ack", "ref": 1}


def test_dump_json_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(TypeError):
        dump_json({"x": object()})


def test_sse_frame_heartbeat_is_a_comment() -> None:
    assert sse_frame(comment="ping") == b": ping\r\n\r\n"


def test_sse_frame_control_event_carries_event_data_id_and_retry() -> None:
    fields = parse_sse(sse_frame(event="reset", data='{"cursor":"x"}', id="x", retry=2000))
    assert fields == {
        "id": ["x"],
        "event": ["reset"],
        "data": ['{"cursor":"x"}'],
        "retry": ["2000"],
    }


# -- decode_message -------------------------------------------------------------------------


def test_decode_message_parses_json_text() -> None:
    assert decode_message('{"op":"ping"}', Format.JSON) == {"op": "ping"}


def test_decode_message_parses_msgpack_bytes() -> None:
    frame = msgpack.packb({"op": "publish", "data": b"\x00"}, use_bin_type=True)
    assert decode_message(frame, Format.MSGPACK) == {"op": "publish", "data": b"\x00"}


@pytest.mark.parametrize("frame", ["{", "not json", "", '{"op": "ping"} trailing'])
def test_decode_message_rejects_bad_json(frame: str) -> None:
    with pytest.raises(Malformed, match="not JSON"):
        decode_message(frame, Format.JSON)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",  # a byte msgpack never uses
        b"\x92\x01",  # an array of two with one element
        msgpack.packb({"op": "ping"}) + b"\x01",  # trailing data
        msgpack.packb({1: "int keys are not allowed"}),
    ],
)
def test_decode_message_rejects_bad_msgpack(frame: bytes) -> None:
    with pytest.raises(Malformed, match="not msgpack"):
        decode_message(frame, Format.MSGPACK)


def test_decode_message_rejects_a_binary_frame_on_json() -> None:
    with pytest.raises(Malformed, match="text frames"):
        decode_message(b'{"op":"ping"}', Format.JSON)


def test_decode_message_rejects_a_text_frame_on_msgpack() -> None:
    with pytest.raises(Malformed, match="binary frames"):
        decode_message('{"op":"ping"}', Format.MSGPACK)


def test_decode_message_rejects_deeply_nested_json_as_malformed() -> None:
    # Regression: wire.py decode_message used to catch only ValueError around json.loads; deeply
    # nested JSON raises RecursionError, which escapes the WebSocket reader's `except
    # Malformed` and ends the connection without a 4xxx close code.
    with pytest.raises(Malformed):
        decode_message("[" * 100_000, Format.JSON)


def test_decode_message_rejects_deeply_nested_msgpack_as_malformed() -> None:
    with pytest.raises(Malformed):
        decode_message(b"\x91" * 100_000 + b"\xc0", Format.MSGPACK)


@settings(max_examples=200, deadline=None)
@given(frame=st.binary(max_size=200))
def test_random_bytes_on_msgpack_parse_or_raise_only_malformed(frame: bytes) -> None:
    with contextlib.suppress(Malformed):
        decode_message(frame, Format.MSGPACK)


@settings(max_examples=200, deadline=None)
@given(frame=st.text(max_size=200))
def test_random_text_on_json_parses_or_raises_only_malformed(frame: str) -> None:
    with contextlib.suppress(Malformed):
        decode_message(frame, Format.JSON)


# -- herald.v1.batch.*: several server messages spliced into one frame ---------------------


@pytest.mark.parametrize("count", [2, 15, 16, 65535, 65536])
def test_a_msgpack_batch_holds_every_message_in_order(count: int) -> None:
    messages = [{"op": "event", "n": n, "blob": b"\x00\x01"} for n in range(count)]
    frames: list[bytes | str] = [encode_message(m, Format.MSGPACK) for m in messages]
    decoded = msgpack.unpackb(batch_frame(frames, Format.MSGPACK), raw=False)
    assert decoded == {"op": "batch", "messages": messages}


def test_a_json_batch_holds_every_message_in_order() -> None:
    event = make_event({"text": "ünïcode ✓", "n": [1, 2.5, None]})
    frames = [
        event_frame(event, Format.JSON, Scope.TOPIC),
        encode_message({"op": "pong"}, Format.JSON),
        event_frame(event, Format.JSON, Scope.PARTITION),
    ]
    batch = batch_frame(frames, Format.JSON)
    assert isinstance(batch, str)
    assert json.loads(batch) == {
        "op": "batch",
        "messages": [json.loads(frame) for frame in frames],
    }


def test_a_batch_is_spliced_from_the_shared_frames_not_re_encoded() -> None:
    event = make_event()
    shared = event_frame(event, Format.JSON, Scope.TOPIC)
    assert isinstance(shared, str)
    batch = batch_frame([shared, shared], Format.JSON)
    assert batch == '{"op":"batch","messages":[' + shared + "," + shared + "]}"
    packed = event_frame(event, Format.MSGPACK, Scope.TOPIC)
    assert isinstance(packed, bytes)
    assert batch_frame([packed, packed], Format.MSGPACK).endswith(b"\x92" + packed + packed)


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65536, b"\x81\x7f" + (65536).to_bytes(8, "big")),
    ],
)
def test_a_text_message_becomes_one_whole_unmasked_frame(size: int, header: bytes) -> None:
    assert (
        ws_frame("é" * (size // 2) + "x" * (size % 2))
        == header + ("é" * (size // 2) + "x" * (size % 2)).encode()
    )


def test_a_binary_message_becomes_a_binary_frame() -> None:
    assert ws_frame(b"\x00\xff") == b"\x82\x02\x00\xff"


def test_an_events_websocket_frame_is_built_once_and_shared() -> None:
    event = make_event()
    frame = event_ws_frame(event, Format.JSON, Scope.TOPIC)
    assert frame is event_ws_frame(event, Format.JSON, Scope.TOPIC)
    message = event_frame(event, Format.JSON, Scope.TOPIC)
    assert isinstance(message, str)
    assert frame == ws_frame(message)
    assert event_ws_frame(event, Format.MSGPACK, Scope.TOPIC)[0] == 0x82


def test_frames_are_grouped_in_order_into_batches_of_bounded_size() -> None:
    pad = "x" * (BATCH_BYTES // 10)
    frames = [encode_message({"op": "event", "n": n, "pad": pad}, Format.JSON) for n in range(35)]
    grouped = batches(frames, Format.JSON)
    assert len(grouped) == 4
    messages = []
    for batch in grouped:
        assert len(batch) <= BATCH_BYTES + 64
        decoded = json.loads(batch)
        assert decoded["op"] == "batch"
        messages.extend(decoded["messages"])
    assert [m["n"] for m in messages] == list(range(35))


def test_msgpack_frames_are_grouped_into_a_binary_batch() -> None:
    frames = [encode_message({"op": "event", "n": n}, Format.MSGPACK) for n in range(3)]
    (batch,) = batches(frames, Format.MSGPACK)
    assert isinstance(batch, bytes)
    assert msgpack.unpackb(batch) == {
        "op": "batch",
        "messages": [{"op": "event", "n": n} for n in range(3)],
    }


def test_a_lone_frame_is_not_wrapped() -> None:
    frame = encode_message({"op": "pong"}, Format.JSON)
    assert batches([frame], Format.JSON) == [frame]


# -- data spliced from the stored value ------------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",)), max_size=8), inner)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(data=_json_values, key=st.none() | st.text(st.characters(exclude_categories=("Cs",))))
def test_a_frame_spliced_from_the_stored_value_is_the_encoded_event(data: Any, key: Any) -> None:
    event = make_event(data, key=key or None)
    assert event.checked_json
    for scope in Scope:
        expected = dump_json(event.as_dict(scope))
        assert event_frame(event, Format.JSON, scope) == '{"op":"event",' + expected[1:]
        assert parse_sse(event_frame(event, Format.SSE, scope))["data"] == [expected]  # type: ignore[arg-type]


def foreign_event(value: bytes, headers: list[tuple[str, bytes]]) -> Event:
    """A record another producer wrote."""
    return event_from_record(TOPIC, 0, 1, 1714564800123, None, value, headers, Cursor.of({0: 2}))


def test_a_foreign_value_is_decoded_and_encoded_again() -> None:
    event = foreign_event(b'{\n  "a": [1, 2]\n}', [])
    assert not event.checked_json
    assert json.loads(event_frame(event, Format.JSON, Scope.TOPIC))["data"] == {"a": [1, 2]}
    assert parse_sse(event_frame(event, Format.SSE, Scope.TOPIC))["data"][0].endswith(  # type: ignore[arg-type]
        '"data":{"a":[1,2]}}'
    )


@pytest.mark.parametrize("value", [b'{\n"a":1}', b'"a\rb"', b'"\xff"'])
def test_a_value_marked_checked_that_would_break_a_frame_is_encoded_again(value: bytes) -> None:
    event = foreign_event(value, [(CHECKED_HEADER, CHECKED_JSON)])
    assert event.data_json() is None
    frame = event_frame(event, Format.SSE, Scope.TOPIC)
    assert isinstance(frame, bytes)
    assert len(parse_sse(frame)["data"]) == 1  # one data line: the frame holds together
    json.loads(event_frame(event, Format.JSON, Scope.TOPIC))


def test_msgpack_values_are_not_marked_checked() -> None:
    event = make_event({"blob": b"\x00\x01"})
    assert not event.checked_json
    assert json.loads(event_frame(event, Format.JSON, Scope.TOPIC))["data"] == {"blob": "AAE="}


@settings(max_examples=300, deadline=None)
@given(
    event_id=st.text(max_size=30),
    event_type=st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
    body=st.text(st.characters(exclude_categories=("Cs",)), max_size=60),
)
def test_an_event_frame_is_what_sse_starlette_writes(
    event_id: str, event_type: str, body: str
) -> None:
    expected = ServerSentEvent(data=body, id=event_id, event=event_type).encode()
    assert sse_event_frame(event_id, event_type, body) == expected


def test_a_msgpack_container_may_not_declare_more_entries_than_the_cap() -> None:
    # An array header declaring a million entries, in five bytes.
    huge = b"\xdd" + (1_000_000).to_bytes(4, "big")
    with pytest.raises(Malformed):
        parse_msgpack(huge + b"\xc0" * 10)
    assert parse_msgpack(msgpack.packb(list(range(1000)))) == list(range(1000))
