"""Wire formats: the bytes each transport sends, encoded once per event and shared."""

from __future__ import annotations

import base64
import json
import math
from enum import Enum
from typing import Any, TypeVar

import msgpack
from sse_starlette import ServerSentEvent
from wsproto.frame_protocol import FrameProtocol

from .errors import Malformed
from .events import Event, EventRun, Scope


class Format(Enum):
    """How a subscriber receives events."""

    JSON = "json"  # WebSocket text frames, herald.v1.json
    MSGPACK = "msgpack"  # WebSocket binary frames, herald.v1.msgpack
    SSE = "sse"  # text/event-stream

    # By identity, like Scope: a frame cache lookup per delivery stays in C.
    __hash__ = object.__hash__


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


# The most entries a client's msgpack array or map may declare: msgpack sizes containers up
# front from their header, so a few bytes could otherwise ask for a huge one.
MAX_ENTRIES = 100_000


def parse_msgpack(raw: bytes) -> Any:
    """Client msgpack as a Python value (string map keys only); otherwise Malformed."""
    try:
        return msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_array_len=MAX_ENTRIES,
            max_map_len=MAX_ENTRIES,
        )
    except (ValueError, RecursionError, msgpack.UnpackException) as exc:
        raise Malformed(f"not msgpack: {str(exc)[:200]}") from None


# What an event's cached encodings are: the message, and as a WebSocket frame or HTTP chunk.
_MESSAGE, _WS_FRAME, _HTTP_CHUNK = "message", "ws-frame", "http-chunk"


def event_frame(event: Event, fmt: Format, scope: Scope) -> bytes | str:
    """The frame carrying ``event`` in ``fmt``; computed once and shared by all subscribers."""
    slot = (_MESSAGE, fmt, scope)
    encoded = event.frames()
    frame = encoded.get(slot)
    if frame is None:
        frame = encoded[slot] = _encode_event(event, fmt, scope)
    return frame


def _encode_event(
    event: Event, fmt: Format, scope: Scope, event_id: str | None = None
) -> bytes | str:
    if fmt is Format.MSGPACK:
        return dump_msgpack({"op": "event", **event.as_dict(scope, event_id)})
    event_id = event_id or event.id(scope)
    body = _event_json(event, scope, event_id)
    if fmt is Format.SSE:
        return sse_event_frame(event_id, event.type, body)
    # The WS message is the event object with "op" first: splice rather than encode twice.
    return '{"op":"event",' + body[1:]


def _event_json(event: Event, scope: Scope, event_id: str) -> str:
    """``event.as_dict()`` as JSON (the same text), splicing in the stored data if it can."""
    data = event.data_json()
    if data is None:
        return dump_json(event.as_dict(scope, event_id))
    key = "null" if event.key is None else _json_string(event.key)
    # An id is base64url and a time RFC 3339: neither needs escaping.
    return (
        f'{{"id":"{event_id}","topic":{_json_string(event.topic)},"key":{key},'
        f'"partition":{event.partition},"offset":"{event.offset}",'
        f'"type":{_json_string(event.type)},"time":"{event.time}","data":{data}}}'
    )


def sse_event_frame(event_id: str, event_type: str, body: str) -> bytes:
    """``ServerSentEvent(data=body, id=event_id, event=event_type).encode()``, byte for byte.

    Built once per event of every stream, so from the parts sse-starlette would write: the
    event line of each type comes from it once; an id and a body without line breaks are
    written as they are (a cursor never has one; JSON text from _event_json neither).
    """
    if "\n" in body or "\r" in body or "\n" in event_id or "\r" in event_id:
        return ServerSentEvent(data=body, id=event_id, event=event_type).encode()
    line = _SSE_EVENT_LINES.get(event_type)
    if line is None:
        if len(_SSE_EVENT_LINES) >= 1024:
            _SSE_EVENT_LINES.clear()
        # "event: <type>\r\n\r\n" as sse-starlette writes it, without the blank line.
        line = _SSE_EVENT_LINES[event_type] = ServerSentEvent(event=event_type).encode()[:-2]
    return b"".join(
        (b"id: ", event_id.encode(), b"\r\n", line, b"data: ", body.encode(), b"\r\n\r\n")
    )


_SSE_EVENT_LINES: dict[str, bytes] = {}


# A str as JSON (quotes and escapes), as dump_json writes it (ensure_ascii=False).
_json_string = json.encoder.encode_basestring


# Frames a server sends: unmasked, never fragmented, no extension (an uncompressed message is
# valid on a permessage-deflate connection too: RFC 7692 section 6).
_server_framing = FrameProtocol(client=False, extensions=[])


def ws_frame(message: bytes | str) -> bytes:
    """``message`` as one whole WebSocket frame on the wire: text for str, binary for bytes."""
    return bytes(_server_framing.send_data(message, fin=True))


def event_ws_frame(event: Event, fmt: Format, scope: Scope) -> bytes:
    """The WebSocket frame (header and all) carrying ``event``; computed once and shared."""
    slot = (_WS_FRAME, fmt, scope)
    encoded = event.frames()
    frame = encoded.get(slot)
    if frame is None:
        frame = encoded[slot] = ws_frame(event_frame(event, fmt, scope))
    assert isinstance(frame, bytes)
    return frame


def event_sse_chunk(event: Event, scope: Scope) -> bytes:
    """``event``'s SSE frame as one HTTP/1.1 body chunk (size line and all); shared."""
    slot = (_HTTP_CHUNK, Format.SSE, scope)
    encoded = event.frames()
    chunk = encoded.get(slot)
    if chunk is None:
        frame = event_frame(event, Format.SSE, scope)
        assert isinstance(frame, bytes)
        chunk = encoded[slot] = b"%x\r\n%s\r\n" % (len(frame), frame)
    assert isinstance(chunk, bytes)
    return chunk


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


# A batch message grows to about this many bytes before the next one starts (a stock
# client such as Python's websockets takes messages up to 1 MiB).
BATCH_BYTES = 256 * 1024
_Frame = TypeVar("_Frame", bytes, bytes | str)


def batches(frames: list[bytes | str], fmt: Format) -> list[bytes | str]:
    """``frames`` as ``batch`` messages of about BATCH_BYTES (a lone frame stays as it is)."""
    return [
        batch_frame(group, fmt) if len(group) > 1 else group[0]
        for group in groups(frames, BATCH_BYTES)
    ]


def groups(frames: list[_Frame], limit: int) -> list[list[_Frame]]:
    """``frames`` in order, in runs of at most ``limit`` bytes (a bigger frame alone)."""
    out: list[list[_Frame]] = []
    group: list[_Frame] = []
    size = 0
    for frame in frames:
        if group and size + len(frame) > limit:
            out.append(group)
            group, size = [], 0
        group.append(frame)
        size += len(frame)
    if group:
        out.append(group)
    return out


# A run's bytes on a socket: SocketWrite keeps them in the run, shared by its subscribers.


def run_ws_frames(run: EventRun, fmt: Format) -> bytes:
    """The events of ``run`` as consecutive WebSocket frames."""
    return b"".join([event_ws_frame(event, fmt, run.scope) for event in run.events])


def run_ws_batches(run: EventRun, fmt: Format) -> bytes:
    """The events of ``run`` as ``batch`` WebSocket messages (herald.v1.batch.*)."""
    frames = [event_frame(event, fmt, run.scope) for event in run.events]
    return b"".join([ws_frame(message) for message in batches(frames, fmt)])


def run_sse_chunks(run: EventRun, fmt: Format) -> bytes:
    """The events of ``run`` as SSE frames, each one HTTP/1.1 body chunk."""
    return b"".join([event_sse_chunk(event, run.scope) for event in run.events])


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


def skipped_frame(fmt: Format, topic: str, key: str | None, count: int) -> bytes | str:
    """Tells a ``mode=latest`` subscriber that ``count`` events of ``key`` were skipped
    before the next one: WebSocket op ``skipped``, SSE ``event: skipped``."""
    body = {"topic": topic, "key": key, "count": count}
    if fmt is Format.SSE:
        return sse_frame(event="skipped", data=dump_json(body))
    return encode_message({"op": "skipped", **body}, fmt)


def lag_frame(fmt: Format, behind_s: float) -> bytes | str:
    """Tells a client how far behind Kafka's head this instance reads (0.0: live again):
    WebSocket op ``lag``, SSE ``event: lag``."""
    body = {"behind_s": round(behind_s, 1), "live": not behind_s}
    if fmt is Format.SSE:
        return sse_frame(event="lag", data=dump_json(body))
    return encode_message({"op": "lag", **body}, fmt)
