"""service/transports/websocket.py: write grouping (the routes themselves: tests/routes)."""

from __future__ import annotations

from service.transports.websocket import WRITE_BYTES, _joined


def test_frames_are_joined_into_writes_of_bounded_size_in_order() -> None:
    frames = [bytes([n]) * (WRITE_BYTES // 3) for n in range(7)]
    writes = _joined(frames)
    assert b"".join(writes) == b"".join(frames)
    assert all(len(write) <= WRITE_BYTES for write in writes)
    assert len(writes) == 3
    assert _joined(frames[:1]) == frames[:1]
