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
        body = b"".join(parts)
        raw = body + _checksum(topic, body)
        return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode()

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
    out = bytearray()
    _put_varint(out, pair[0])
    _put_varint(out, pair[1])
    if len(_PAIRS) >= _CACHED:
        _PAIRS.clear()
    encoded = _PAIRS[pair] = bytes(out)
    return encoded


def _put_varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError("cursor offsets and partitions are never negative")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


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
