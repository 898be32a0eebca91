"""Hypothesis strategies for hostile input: cursors, times, keys, topics, payloads, frames."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import msgpack
from hypothesis import strategies as st

from service.cursor import Cursor

# A lone UTF-16 surrogate: legal inside a JSON string escape ("\ud800"), not encodable as UTF-8.
SURROGATES = ["\ud800", "a\udfffb", "\udbff\udbff"]
# Integers at and beyond what msgpack (and so a msgpack subscriber) can carry.
EDGE_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30]
EDGE_FLOATS = [float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 5e-324]

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
printable_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)


def long_text(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.integers(min_size, max_size).flatmap(
        lambda n: st.sampled_from("xé字🙂\x00").map(lambda c: c * n)
    )


# -- cursors and start points ---------------------------------------------------------------


def forge_cursor(topic: str, positions: dict[int, int]) -> str:
    """A cursor with a valid digest for ``topic`` that names any partitions and offsets."""
    return Cursor.of(positions).encode(topic)


def _mutate(text: str, index: int, replacement: str, how: str) -> str:
    if not text:
        return replacement
    index %= len(text)
    if how == "replace":
        return text[:index] + replacement + text[index + 1 :]
    if how == "insert":
        return text[:index] + replacement + text[index:]
    if how == "truncate":
        return text[:index]
    return text + replacement


offsets = st.one_of(
    st.integers(0, 40),
    st.integers(0, 2**63 - 1),
    st.sampled_from([2**63, 2**64, 2**70 - 1]),  # the varint format allows up to 70 bits
)
positions = st.dictionaries(st.integers(0, 6) | st.integers(7, 2**31), offsets, max_size=4)


def forged_cursors(topics: Sequence[str]) -> st.SearchStrategy[str]:
    """Cursors a server accepts as well formed: for these topics and for others."""
    named = st.sampled_from([*topics, "fz-other", "notifications"])
    return st.builds(forge_cursor, named, positions)


def cursors(topics: Sequence[str]) -> st.SearchStrategy[str]:
    """Valid, foreign, altered and made-up cursors."""
    forged = forged_cursors(topics)
    mutated = st.builds(
        _mutate,
        forged,
        st.integers(0, 200),
        st.sampled_from(["A", "_", "-", "=", "+", "/", "é", " ", "%", "\x00"]),
        st.sampled_from(["replace", "insert", "truncate", "append"]),
    )
    raw = st.builds(
        lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode(),
        st.binary(max_size=40),
    )
    return st.one_of(
        forged,
        mutated,
        raw,
        st.from_regex(r"[A-Za-z0-9_-]{1,30}", fullmatch=True),
        st.just("A" * 4097),  # longer than any cursor may be
        any_text,
    )


_offsets_minutes = st.integers(-(24 * 60 - 1), 24 * 60 - 1)
aware_times = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    _offsets_minutes,
)


def time_texts() -> st.SearchStrategy[str]:
    """RFC 3339 times (any year, any offset), naive times and things that only look like one."""
    return st.one_of(
        aware_times.map(lambda t: t.isoformat()),
        aware_times.map(lambda t: t.isoformat().replace("+00:00", "Z")),
        st.datetimes().map(lambda t: t.isoformat()),  # no time zone
        st.sampled_from(
            [
                "1969-12-31T23:59:59Z",
                "1970-01-01T00:00:00Z",
                "1970-01-01T00:00:00.001Z",
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999999+00:00",
                "2020-02-30T00:00:00Z",
                "2020-01-01T24:00:00Z",
                "2020-01-01T00:00:00+25:00",
                "T:",
                "2020-01-01T00:00:00\n",
                "2020-01-01t00:00:00z",
            ]
        ),
    )


def start_points(topics: Sequence[str]) -> st.SearchStrategy[str]:
    """Anything a client may put in ``since``, ``after`` or ``Last-Event-ID``."""
    return st.one_of(
        st.sampled_from(["earliest", "EARLIEST", "latest", "now", "", " "]),
        cursors(topics),
        time_texts(),
    )


# -- topics, keys, payloads -----------------------------------------------------------------


def topic_names(exposed: Sequence[str], prefix: str) -> st.SearchStrategy[str]:
    """Exposed names (``exposed``, and new ones starting with ``prefix``) and others."""
    return st.one_of(
        st.sampled_from(list(exposed)),
        st.sampled_from(list(exposed)),
        st.sampled_from(
            ["notifications", "__consumer_offsets", prefix, ".", "..", "fz-a", f"{prefix}a/b"]
        ),
        st.from_regex(r"[A-Za-z0-9._-]{1,8}", fullmatch=True).map(lambda s: prefix + s),
        long_text(249, 1100).map(lambda s: prefix + s),
        any_text,
        st.sampled_from(SURROGATES),
    )


keys = st.one_of(
    st.sampled_from(["k1", "user-42", "ü", "🙂", "a b", "x" * 256]),
    printable_text.filter(bool),
    st.sampled_from(["", "\x00", "a\nb", "\x7f", "x" * 257, *SURROGATES]),
    long_text(257, 1100),
    any_text,
)
event_types = st.one_of(
    st.sampled_from(["message", "order.created", "a:b-c_d", "x" * 64]),
    st.sampled_from(["", " ", "a b", "-a", "x" * 65, "\x00", *SURROGATES]),
    any_text,
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.floats(),
    st.sampled_from(EDGE_FLOATS),
    any_text,
    st.sampled_from(SURROGATES),
)


def json_values(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Values json.dumps can write (NaN, huge integers and lone surrogates included)."""
    return st.recursive(
        json_scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(any_text | st.sampled_from(SURROGATES), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


msgpack_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.sampled_from(EDGE_FLOATS),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
    st.builds(msgpack.Timestamp, st.integers(-(2**33), 2**33), st.integers(0, 999_999_999)),
)


def msgpack_values(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Values msgpack can write: binary, extension types, timestamps and non-string map keys."""
    map_keys = st.one_of(st.text(max_size=8), st.binary(max_size=8))
    return st.recursive(
        msgpack_scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(map_keys, inner, max_size=4),
        max_leaves=max_leaves,
    )


def deep(levels: int, leaf: Any = 1) -> Any:
    value: Any = leaf
    for _ in range(levels):
        value = [value]
    return value


def pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True, datetime=False)
    return packed


def dump(value: Any) -> str:
    return json.dumps(value)
