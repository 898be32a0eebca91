"""Idempotent publishing: a retried publish returns the original ids and writes nothing new.

The ``Idempotency-Key`` travels with each record in a Kafka header (with the event's index in
its batch and a digest of the batch), so every instance learns it from its own consumer:
a retry that reaches another instance is answered from that instance's index. Records of a
keyed batch land on their key's partition and unkeyed ones on the topic's unkeyed partition,
so if a retry does race the first write, both copies sit in one partition, every instance
sees the same one first, and only that one is delivered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

HEADER = "herald-idempotency"
# An Idempotency-Key header (or a WebSocket publish ref) is at most this long.
MAX_IDEMPOTENCY_KEY_CHARS = 128


@dataclass(frozen=True, slots=True)
class Tag:
    """The idempotency header of one record: which batch it belongs to and where in it."""

    key: str
    index: int
    count: int
    digest: str

    def header(self) -> bytes:
        # The key goes last: it may itself hold colons.
        return f"{self.digest}:{self.index}:{self.count}:{self.key}".encode()

    @classmethod
    def parse(cls, raw: bytes) -> Tag | None:
        try:
            digest, index, count, key = raw.decode().split(":", 3)
            return cls(key, int(index), int(count), digest)
        except ValueError:
            return None  # not ours, or damaged: treat the record as untagged


def tags_for(key: str, batch: list[tuple[str, str | None, Any]]) -> list[Tag]:
    """Tags for a batch of (type, key, data) published under the idempotency ``key``."""
    digest = _digest(batch)
    return [Tag(key, index, len(batch), digest) for index in range(len(batch))]


def _digest(batch: list[tuple[str, str | None, Any]]) -> str:
    """What the batch says, so a key reused for a different body is told apart."""
    canonical = json.dumps(
        batch,
        sort_keys=True,
        separators=(",", ":"),
        default=_bytes_as_text,
    )
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def _bytes_as_text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return "b64:" + base64.b64encode(bytes(value)).decode()
    raise TypeError(type(value).__name__)


@dataclass(slots=True)
class Written:
    """Where one tagged record was stored."""

    partition: int
    offset: int
    event_key: str | None


@dataclass(slots=True)
class Batch:
    """What this instance knows of one idempotency key in one topic."""

    digest: str
    count: int
    seen_at: float
    parts: dict[int, Written] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.parts) == self.count


class IdempotencyIndex:
    """Idempotency keys seen in one topic within ``window_s``, at most ``max_keys`` of each kind.

    Two kinds: what the consumer read (the first copy in partition order, the same on every
    instance, so the only one that decides which copy is delivered), and what this
    instance's own publishes were answered with (so a quick retry here is answered at once).
    """

    def __init__(self, window_s: float, max_keys: int) -> None:
        self._window_s = window_s
        self._max_keys = max_keys
        self._consumed: OrderedDict[str, Batch] = OrderedDict()
        self._answered: OrderedDict[str, Batch] = OrderedDict()

    @property
    def empty(self) -> bool:
        return not (self._consumed or self._answered)

    def lookup(self, key: str) -> Batch | None:
        """The batch written under ``key``, once every one of its records is known."""
        for batches in (self._consumed, self._answered):
            self._expire(batches)
            batch = batches.get(key)
            if batch is not None and batch.complete:
                return batch
        return None

    def is_repeat(self, tag: Tag, partition: int, offset: int) -> bool:
        """Whether an earlier record carried this tag: this one must not be delivered."""
        batch = self._consumed.get(tag.key)
        if batch is None:
            return False
        first = batch.parts.get(tag.index)
        return first is not None and (first.partition, first.offset) != (partition, offset)

    def record(self, tag: Tag, partition: int, offset: int, event_key: str | None) -> None:
        """The consumer read a tagged record (the first copy wins)."""
        self._note(self._consumed, tag, partition, offset, event_key)

    def answered(self, tag: Tag, partition: int, offset: int, event_key: str | None) -> None:
        """This instance's publish of a tagged record was acknowledged there."""
        self._note(self._answered, tag, partition, offset, event_key)

    def _note(
        self,
        batches: OrderedDict[str, Batch],
        tag: Tag,
        partition: int,
        offset: int,
        event_key: str | None,
    ) -> None:
        self._expire(batches)
        batch = batches.get(tag.key)
        if batch is None:
            batch = batches[tag.key] = Batch(tag.digest, tag.count, time.monotonic())
        batch.parts.setdefault(tag.index, Written(partition, offset, event_key))
        while len(batches) > self._max_keys:
            batches.popitem(last=False)

    def _expire(self, batches: OrderedDict[str, Batch]) -> None:
        horizon = time.monotonic() - self._window_s
        while batches:
            oldest = next(iter(batches.values()))
            if oldest.seen_at >= horizon:
                return
            batches.popitem(last=False)
