"""Cursors: opaque, URL-safe names of a position in one topic.

A cursor maps partitions to the offset of the next record to read. Wire form, base64url
without padding: a version byte, (partition, offset) pairs as LEB128 varints in partition
order, and a CRC-32 over the topic name and those bytes, so a cursor of another topic or
one with a changed byte is rejected rather than silently resumed from the wrong place.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import BadCursor

_VERSION = 1
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
        body = bytearray([_VERSION])
        for partition, offset in self.offsets:
            _put_varint(body, partition)
            _put_varint(body, offset)
        body += _checksum(topic, body).to_bytes(4, "big")
        return base64.urlsafe_b64encode(bytes(body)).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, topic: str, text: str) -> Cursor:
        """Parse ``text`` as a cursor of ``topic``; raise BadCursor for anything else."""
        if not text or len(text) > MAX_CURSOR_CHARS:
            raise BadCursor("cursor is empty or too long")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise BadCursor("cursor is not base64url") from None
        if len(raw) < 5 or raw[0] != _VERSION:
            raise BadCursor("cursor has an unknown version")
        body, check = raw[:-4], int.from_bytes(raw[-4:], "big")
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


def _checksum(topic: str, body: bytes | bytearray) -> int:
    return zlib.crc32(bytes(body), zlib.crc32(topic.encode()))


def _put_varint(out: bytearray, value: int) -> None:
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
