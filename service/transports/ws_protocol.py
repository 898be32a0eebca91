"""The WebSocket protocol (herald.v1.*): subprotocols, close codes, and what a client op holds.

schemas/openapi.yaml documents the same; the connection that speaks it is websocket.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..cursor import MAX_CURSOR_CHARS
from ..errors import BadParameter
from ..events import MAX_KEY_CHARS
from ..idempotency import MAX_IDEMPOTENCY_KEY_CHARS
from ..wire import Format, encode_message
from .params import mode_value

# Each subprotocol: its frames' format, and whether the client takes ``batch`` messages.
SUBPROTOCOLS = {
    "herald.v1.json": (Format.JSON, False),
    "herald.v1.msgpack": (Format.MSGPACK, False),
    "herald.v1.batch.json": (Format.JSON, True),
    "herald.v1.batch.msgpack": (Format.MSGPACK, True),
}

# Close codes (documented in openapi.yaml).
CLOSE_MALFORMED = 4400
CLOSE_WRONG_FRAME = 4415
CLOSE_LAGGING = 4409
CLOSE_GOING_AWAY = 4503
CLOSE_TOO_BIG = 1009
CLOSE_TOKEN_EXPIRED = 4401
CLOSE_IDLE = 4408
CLOSE_RATE_LIMITED = 4429

# How long a field may be before it is a protocol violation (a longer topic name than Kafka
# allows is an ``unknown-topic`` error, as over HTTP, not a violation).
_MAX_FIELD_CHARS = {"topic": 1024, "key": MAX_KEY_CHARS, "since": MAX_CURSOR_CHARS}
# A publish's ``ref`` doubles as its idempotency key.
MAX_REF_CHARS = MAX_IDEMPOTENCY_KEY_CHARS

# The same bytes for every connection of a format.
HEARTBEATS = {
    fmt: encode_message({"op": "heartbeat"}, fmt) for fmt in (Format.JSON, Format.MSGPACK)
}


@dataclass(frozen=True, slots=True)
class Subscribe:
    topic: str
    key: str | None
    since: str | None
    # mode=latest: only the newest waiting event per key.
    latest: bool = False


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topic: str
    key: str | None


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    # What the ack echoes; a string ref is also the publish's idempotency key.
    ref: str | int | None
    # The event's own fields (type, key, data) as the client sent them.
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Ping:
    pass


Op = Subscribe | Unsubscribe | Publish | Ping


class ProtocolViolation(Exception):
    """The client broke the protocol: the connection closes with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def negotiate(requested: list[str]) -> str | None:
    """The first subprotocol the client offers that Herald speaks; "" when it offers none."""
    if not requested:
        return ""
    return next((name for name in requested if name in SUBPROTOCOLS), None)


def parse_op(message: Any) -> Op:
    """A client message as the op it asks for; ProtocolViolation for anything else."""
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolViolation(CLOSE_MALFORMED, "a message is an object with an op")
    op: str = message["op"]
    if op == "subscribe":
        return subscribe_op(message)
    if op == "unsubscribe":
        topic = text_field(message, "topic", True)
        assert topic is not None
        return Unsubscribe(topic, text_field(message, "key", False))
    if op == "publish":
        ref = ref_field(message)
        topic = text_field(message, "topic", True)
        assert topic is not None
        event = {name: message[name] for name in ("type", "key", "data") if name in message}
        return Publish(topic, ref, event)
    if op == "ping":
        return Ping()
    raise ProtocolViolation(CLOSE_MALFORMED, f"unknown op {op[:40]!r}")


def subscribe_op(fields: Mapping[str, Any]) -> Subscribe:
    """A subscribe op (or the subscription a WebSocket URL asks for)."""
    topic = text_field(fields, "topic", True)
    assert topic is not None
    try:
        latest = mode_value(fields.get("mode"))
    except BadParameter as exc:
        raise ProtocolViolation(CLOSE_MALFORMED, exc.detail) from None
    return Subscribe(
        topic, text_field(fields, "key", False), text_field(fields, "since", False), latest
    )


def text_field(message: Mapping[str, Any], name: str, required: bool) -> str | None:
    """A string field of a client op (topic, key, since)."""
    value = message.get(name)
    if value is None:
        if required:
            raise ProtocolViolation(CLOSE_MALFORMED, f"{name} is required")
        return None
    # isprintable also refuses lone surrogates, which no wire format can carry back.
    longest = _MAX_FIELD_CHARS.get(name, 1024)
    if not isinstance(value, str) or not value or len(value) > longest or not value.isprintable():
        raise ProtocolViolation(
            CLOSE_MALFORMED, f"{name} must be 1 to {longest} printable characters"
        )
    return value


def ref_field(message: Mapping[str, Any]) -> str | int | None:
    """A publish's ``ref``: a string or an integer the ``ack`` echoes."""
    ref = message.get("ref")
    if ref is not None and (
        isinstance(ref, bool)
        or not (isinstance(ref, int) or (isinstance(ref, str) and len(ref) <= MAX_REF_CHARS))
    ):
        raise ProtocolViolation(CLOSE_MALFORMED, "ref is a string or an integer")
    return ref
