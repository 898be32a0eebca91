"""Event data both wire formats can carry: JSON (bytes as base64) and msgpack.

Checked once where data enters (publish) and where a record is decoded (consumer), so that
no event can reach the fan-out that one format cannot encode: such an event would break the
writer of every subscriber of that format.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack

_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1
MAX_DEPTH = 200


def problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot travel in both formats, or None when it can."""
    if depth > MAX_DEPTH:
        return "nested too deeply"
    if value is None or isinstance(value, bool | bytes):
        return None
    if isinstance(value, int):
        return None if _MIN_INT <= value <= _MAX_INT else "an integer beyond 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else "NaN or an infinite number"
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, list | tuple):
        for item in value:
            found = problem(item, depth + 1)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "a map key that is not a string"
            found = _text_problem(key) or problem(item, depth + 1)
            if found:
                return found
        return None
    return f"a {type(value).__name__}, which JSON cannot carry"


def _text_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate, which is not Unicode text"
    return None


def decode_value(value: bytes, is_msgpack: bool) -> Any:
    """A record value as event data; values not written by Herald arrive as text."""
    # RecursionError too: a record nested absurdly deep must not poison every delivery; and
    # data one wire format cannot carry (another producer's) is delivered as its text.
    try:
        if is_msgpack:
            decoded = msgpack.unpackb(value, raw=False)
        else:
            decoded = json.loads(value, parse_constant=_refuse)
    except (ValueError, RecursionError, msgpack.UnpackException):
        pass
    else:
        if problem(decoded) is None:
            return decoded
    return value.decode("utf-8", errors="replace")


def _refuse(name: str) -> Any:
    raise ValueError(name)
