"""Cursors: opaque, URL-safe names of a position in one topic.

A cursor maps partitions to the offset of the next record to read. Wire form, base64url
without padding: a version byte, (partition, offset) pairs as LEB128 varints in partition
order, and a 6-byte BLAKE2b digest over the topic name and those bytes, so a cursor of
another topic or one with a changed byte is rejected rather than silently resumed from the
wrong place. (A CRC-32 would do for changed bytes, but topic names that collide under it
exist, and would accept each other's cursors.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadCursor

_VERSION = 1
_DIGEST_BYTES = 6
# 1024 partitions with 9-byte varints each stay under this; anything longer is not ours.
MAX_CURSOR_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Cursor:
    """For each partition, the offset of the next record; partitions absent start at 0."""

    offsets: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, positions: Mapping[int, int]) -> Cursor:
        return cls(tuple(sorted(positions.items())))

    @classmethod
    def after(cls, partition: int, offset: int) -> Cursor:
        """The single-partition cursor just past the record at ``offset``."""
        return cls(((partition, offset + 1),))

    def as_dict(self) -> dict[int, int]:
        return dict(self.offsets)

    def encode(self, topic: str) -> str:
        # Every delivered event carries one: the bytes of a (partition, offset) pair that
        # repeats (the partitions an event did not move) come from a cache.
        parts = [_VERSION_BYTE]
        for pair in self.offsets:
            encoded = _PAIRS.get(pair)
            if encoded is None:
                encoded = _pair_bytes(pair)
            parts.append(encoded)
        return _text(topic, b"".join(parts))

    @classmethod
    def decode(cls, topic: str, text: str) -> Cursor:
        """Parse ``text`` as a cursor of ``topic``; raise BadCursor for anything else."""
        if not text or len(text) > MAX_CURSOR_CHARS:
            raise BadCursor("cursor is empty or too long")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise BadCursor("cursor is not base64url") from None
        if len(raw) < 1 + _DIGEST_BYTES or raw[0] != _VERSION:
            raise BadCursor("cursor has an unknown version")
        body, check = raw[:-_DIGEST_BYTES], raw[-_DIGEST_BYTES:]
        if _checksum(topic, body) != check:
            raise BadCursor("cursor does not belong to this topic or was altered")
        pairs: list[tuple[int, int]] = []
        index = 1
        while index < len(body):
            partition, index = _get_varint(body, index)
            offset, index = _get_varint(body, index)
            if pairs and partition <= pairs[-1][0]:
                raise BadCursor("cursor partitions are not in order")
            pairs.append((partition, offset))
        return cls(tuple(pairs))


class Reading:
    """Where a reader of a topic stands as it moves one record at a time, and the text of
    the cursor after each record: only the pair of the partition that moved is encoded
    again, and the pairs are kept in partition order, so nothing is sorted per record.

    A catch-up read gives every event its own topic cursor's text; built from scratch each
    time, those cursors were a quarter of the cost of a replay. The Cursor objects are not
    made at all (Event.topic_cursor decodes the text on the rare occasion one is needed).
    """

    __slots__ = ("_pairs", "_slot", "_topic")

    def __init__(self, topic: str, positions: Mapping[int, int]) -> None:
        self._topic = topic
        order = sorted(positions)
        self._slot = {partition: index for index, partition in enumerate(order)}
        # The version byte first, then each partition's pair, in partition order.
        self._pairs = [_VERSION_BYTE, *(_varints(p, positions[p]) for p in order)]

    def after(self, partition: int, next_offset: int) -> str:
        """Move past a record of ``partition`` (the next to read is ``next_offset``); the
        text of the cursor where the reader now stands."""
        pairs = self._pairs
        pairs[self._slot[partition] + 1] = _varints(partition, next_offset)
        return _text(self._topic, b"".join(pairs))


def _text(topic: str, body: bytes) -> str:
    """A cursor's wire form: its body and the checksum, base64url without padding."""
    raw = body + _checksum(topic, body)
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _checksum(topic: str, body: bytes | bytearray) -> bytes:
    # Topic names cannot hold a NUL byte, so topic and body cannot run into each other.
    prefix = _HASHED_TOPICS.get(topic)
    if prefix is None:
        if len(_HASHED_TOPICS) >= _CACHED:
            _HASHED_TOPICS.clear()
        prefix = _HASHED_TOPICS[topic] = hashlib.blake2b(
            topic.encode() + b"\0", digest_size=_DIGEST_BYTES
        )
    digest = prefix.copy()
    digest.update(body)
    return digest.digest()


_VERSION_BYTE = bytes([_VERSION])
_URLSAFE = bytes.maketrans(b"+/", b"-_")
# Per topic, the hash state after its name; per pair, its varints (bounded caches).
_HASHED_TOPICS: dict[str, Any] = {}
_PAIRS: dict[tuple[int, int], bytes] = {}
_CACHED = 4096


def _pair_bytes(pair: tuple[int, int]) -> bytes:
    if len(_PAIRS) >= _CACHED:
        _PAIRS.clear()
    encoded = _PAIRS[pair] = _varints(*pair)
    return encoded


def _varints(partition: int, offset: int) -> bytes:
    return _varint(partition) + _varint(offset)


def _varint(value: int) -> bytes:
    # One per event read: the common lengths (offsets below 2**28) without a loop.
    if value < 0x80:
        if value < 0:
            raise ValueError("cursor offsets and partitions are never negative")
        return _SMALL_VARINTS[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x200000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
    if value < 0x10000000:
        return bytes(
            (value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14 & 0x7F | 0x80, value >> 21)
        )
    out = []
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL_VARINTS = [bytes((value,)) for value in range(0x80)]


def _get_varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if index >= len(data) or shift > 63:
            raise BadCursor("cursor is truncated")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7
