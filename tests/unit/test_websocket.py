"""service/transports/websocket.py: subprotocol choice and batch grouping."""

from __future__ import annotations

import json

import msgpack

from service.transports.websocket import (
    BATCH_BYTES,
    SUBPROTOCOLS,
    WRITE_BYTES,
    _batches,
    _joined,
    _negotiate,
)
from service.wire import Format, encode_message


def test_the_first_offered_known_subprotocol_wins() -> None:
    assert _negotiate(["x", "herald.v1.batch.json", "herald.v1.json"]) == "herald.v1.batch.json"
    assert _negotiate(["herald.v1.msgpack", "herald.v1.batch.msgpack"]) == "herald.v1.msgpack"
    assert _negotiate([]) == ""
    assert _negotiate(["chat"]) is None


def test_only_the_batch_subprotocols_take_batches() -> None:
    assert {name for name, (_fmt, batch) in SUBPROTOCOLS.items() if batch} == {
        "herald.v1.batch.json",
        "herald.v1.batch.msgpack",
    }


def test_a_lone_frame_is_not_wrapped() -> None:
    frame = encode_message({"op": "pong"}, Format.JSON)
    assert _batches([frame], Format.JSON) == [frame]


def test_frames_are_grouped_in_order_into_batches_of_bounded_size() -> None:
    pad = "x" * (BATCH_BYTES // 10)
    frames = [encode_message({"op": "event", "n": n, "pad": pad}, Format.JSON) for n in range(35)]
    batches = _batches(frames, Format.JSON)
    assert len(batches) == 4
    messages = []
    for batch in batches:
        assert len(batch) <= BATCH_BYTES + 64
        decoded = json.loads(batch)
        assert decoded["op"] == "batch"
        messages.extend(decoded["messages"])
    assert [m["n"] for m in messages] == list(range(35))


def test_msgpack_frames_are_grouped_into_a_binary_batch() -> None:
    frames = [encode_message({"op": "event", "n": n}, Format.MSGPACK) for n in range(3)]
    (batch,) = _batches(frames, Format.MSGPACK)
    assert isinstance(batch, bytes)
    assert msgpack.unpackb(batch) == {
        "op": "batch",
        "messages": [{"op": "event", "n": n} for n in range(3)],
    }


def test_frames_are_joined_into_writes_of_bounded_size_in_order() -> None:
    frames = [bytes([n]) * (WRITE_BYTES // 3) for n in range(7)]
    writes = _joined(frames)
    assert b"".join(writes) == b"".join(frames)
    assert all(len(write) <= WRITE_BYTES for write in writes)
    assert len(writes) == 3
    assert _joined(frames[:1]) == frames[:1]
