"""The WebSocket protocol (herald.v1.*): subprotocols, close codes, and what a client op holds.

schemas/openapi.yaml documents the same; the connection that speaks it is websocket.py.
"""

from __future__ import annotations

from typing import Any

from ..cursor import MAX_CURSOR_CHARS
from ..events import MAX_KEY_CHARS
from ..idempotency import MAX_IDEMPOTENCY_KEY_CHARS
from ..wire import Format, encode_message

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


def op_of(message: Any) -> str:
    """The ``op`` of a client message."""
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolViolation(CLOSE_MALFORMED, "a message is an object with an op")
    op: str = message["op"]
    return op


def text_field(message: dict[str, Any], name: str, required: bool) -> str | None:
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


def ref_field(message: dict[str, Any]) -> str | int | None:
    """A publish's ``ref``: a string or an integer the ``ack`` echoes."""
    ref = message.get("ref")
    if ref is not None and (
        isinstance(ref, bool)
        or not (isinstance(ref, int) or (isinstance(ref, str) and len(ref) <= MAX_REF_CHARS))
    ):
        raise ProtocolViolation(CLOSE_MALFORMED, "ref is a string or an integer")
    return ref
