"""service/transports/websocket.py: subprotocol choice and write grouping."""

from __future__ import annotations

from service.transports.websocket import SUBPROTOCOLS, WRITE_BYTES, _joined, _negotiate


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


def test_frames_are_joined_into_writes_of_bounded_size_in_order() -> None:
    frames = [bytes([n]) * (WRITE_BYTES // 3) for n in range(7)]
    writes = _joined(frames)
    assert b"".join(writes) == b"".join(frames)
    assert all(len(write) <= WRITE_BYTES for write in writes)
    assert len(writes) == 3
    assert _joined(frames[:1]) == frames[:1]
