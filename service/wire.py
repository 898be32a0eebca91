"""Wire formats: the bytes each transport sends, encoded once per event and shared."""

from __future__ import annotations

import base64
import json
import math
from enum import Enum
from typing import Any

import msgpack
from sse_starlette import ServerSentEvent
from wsproto.frame_protocol import FrameProtocol

from .errors import Malformed
from .events import Event, Scope


class Format(Enum):
    """How a subscriber receives events."""

    JSON = "json"  # WebSocket text frames, herald.v1.json
    MSGPACK = "msgpack"  # WebSocket binary frames, herald.v1.msgpack
    SSE = "sse"  # text/event-stream


def _json_default(value: Any) -> Any:
    # JSON cannot carry the binary a msgpack client may publish: it travels as base64 text.
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot encode {type(value).__name__}")


def dump_json(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def dump_msgpack(message: Any) -> bytes:
    packed: bytes = msgpack.packb(message, use_bin_type=True)
    return packed


def encode_message(message: dict[str, Any], fmt: Format) -> bytes | str:
    """A control message (subscribed, ack, error, ...) in a WebSocket format."""
    return dump_msgpack(message) if fmt is Format.MSGPACK else dump_json(message)


def decode_message(frame: bytes | str, fmt: Format) -> Any:
    """A client frame as a Python value; raise Malformed when it does not parse."""
    if fmt is Format.MSGPACK:
        if not isinstance(frame, bytes):
            raise Malformed("herald.v1.msgpack takes binary frames")
        return parse_msgpack(frame)
    if not isinstance(frame, str):
        raise Malformed("herald.v1.json takes text frames")
    return parse_json(frame)


def parse_json(raw: str | bytes) -> Any:
    """Client JSON as a Python value; anything that does not parse (or nests absurdly
    deep, which json reports as RecursionError) is Malformed."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"not JSON: {str(exc)[:200]}") from None


def _no_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; RFC 8259 (and every browser) does not.
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is too large for a JSON number")
    return value


def parse_msgpack(raw: bytes) -> Any:
    """Client msgpack as a Python value (string map keys only); otherwise Malformed."""
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, RecursionError, msgpack.UnpackException) as exc:
        raise Malformed(f"not msgpack: {str(exc)[:200]}") from None


def event_frame(event: Event, fmt: Format, scope: Scope) -> bytes | str:
    """The frame carrying ``event`` in ``fmt``; computed once and shared by all subscribers."""
    slot = (fmt.value, scope)
    frame = event.encoded.get(slot)
    if frame is None:
        frame = event.encoded[slot] = _encode_event(event, fmt, scope)
    return frame


def _encode_event(
    event: Event, fmt: Format, scope: Scope, event_id: str | None = None
) -> bytes | str:
    if fmt is Format.MSGPACK:
        return dump_msgpack({"op": "event", **event.as_dict(scope, event_id)})
    body = dump_json(event.as_dict(scope, event_id))
    if fmt is Format.SSE:
        sse = ServerSentEvent(data=body, id=event_id or event.id(scope), event=event.type)
        return sse.encode()
    # The WS message is the event object with "op" first: splice rather than encode twice.
    return '{"op":"event",' + body[1:]


# Frames a server sends: unmasked, never fragmented, no extension (an uncompressed message is
# valid on a permessage-deflate connection too: RFC 7692 section 6).
_server_framing = FrameProtocol(client=False, extensions=[])


def ws_frame(message: bytes | str) -> bytes:
    """``message`` as one whole WebSocket frame on the wire: text for str, binary for bytes."""
    return bytes(_server_framing.send_data(message, fin=True))


def event_ws_frame(event: Event, fmt: Format, scope: Scope) -> bytes:
    """The WebSocket frame (header and all) carrying ``event``; computed once and shared."""
    slot = ("ws-" + fmt.value, scope)
    frame = event.encoded.get(slot)
    if frame is None:
        frame = event.encoded[slot] = ws_frame(event_frame(event, fmt, scope))
    assert isinstance(frame, bytes)
    return frame


def own_event_frame(event: Event, fmt: Format, scope: Scope, event_id: str) -> bytes | str:
    """The frame for one subscriber whose id for ``event`` differs from the shared one."""
    return _encode_event(event, fmt, scope, event_id)


# herald.v1.batch.*: one frame carrying several server messages, spliced from their own
# already-encoded frames (never re-encoded): {"op":"batch","messages":[m1, m2, ...]}.
_JSON_BATCH_HEAD = '{"op":"batch","messages":['
_MSGPACK_BATCH_HEAD = b"\x82" + b"".join(map(dump_msgpack, ("op", "batch", "messages")))
_msgpack_packer = msgpack.Packer()


def batch_frame(frames: list[bytes | str], fmt: Format) -> bytes | str:
    """One ``batch`` message holding ``frames`` (encoded messages of ``fmt``) in order."""
    if fmt is Format.MSGPACK:
        header: bytes = _msgpack_packer.pack_array_header(len(frames))
        return b"".join((_MSGPACK_BATCH_HEAD, header, *frames))  # type: ignore[arg-type]
    return _JSON_BATCH_HEAD + ",".join(frames) + "]}"  # type: ignore[arg-type]


def sse_frame(
    *,
    event: str | None = None,
    data: str | None = None,
    comment: str | None = None,
    retry: int | None = None,
    id: str | None = None,
) -> bytes:
    """A control frame on an SSE stream (heartbeat, retry, lagging, reset)."""
    return ServerSentEvent(data=data, event=event, comment=comment, retry=retry, id=id).encode()
