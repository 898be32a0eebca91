"""service/idempotency.py: tags survive the header, the index finds batches and repeats."""

from __future__ import annotations

import pytest

from service.idempotency import IdempotencyIndex, Tag, tags_for


def test_tag_round_trips_through_its_header_even_with_colons_in_the_key() -> None:
    tag = Tag("order:42:retry", 1, 3, "abcdef0123456789")
    assert Tag.parse(tag.header()) == tag


@pytest.mark.parametrize("raw", [b"", b"no colons", b"d:x:3:key", b"\xff\xfe"])
def test_a_damaged_header_is_no_tag(raw: bytes) -> None:
    assert Tag.parse(raw) is None


def test_tags_number_the_batch_and_share_one_digest() -> None:
    tags = tags_for("k", [("message", None, 1), ("message", None, 2)])
    assert [(t.index, t.count) for t in tags] == [(0, 2), (1, 2)]
    assert len({t.digest for t in tags}) == 1


def test_digest_tells_bodies_apart_and_ignores_dict_order() -> None:
    [a] = tags_for("k", [("message", None, {"x": 1, "y": 2})])
    [b] = tags_for("k", [("message", None, {"y": 2, "x": 1})])
    [c] = tags_for("k", [("message", None, {"x": 1, "y": 3})])
    [d] = tags_for("k", [("message", None, b"\x00")])
    assert a.digest == b.digest != c.digest
    assert d.digest


def test_a_batch_is_found_only_once_every_record_is_known() -> None:
    index = IdempotencyIndex(window_s=60, max_keys=10)
    first, second = tags_for("k", [("message", None, 1), ("message", None, 2)])
    index.record(first, 0, 5, None)
    assert index.lookup("k") is None
    index.record(second, 1, 9, None)
    batch = index.lookup("k")
    assert batch is not None
    assert [(w.partition, w.offset) for _, w in sorted(batch.parts.items())] == [(0, 5), (1, 9)]


def test_the_first_copy_wins_and_a_later_copy_is_a_repeat() -> None:
    index = IdempotencyIndex(window_s=60, max_keys=10)
    [tag] = tags_for("k", [("message", "a", 1)])
    index.record(tag, 2, 7, "a")
    index.record(tag, 2, 8, "a")
    assert not index.is_repeat(tag, 2, 7)
    assert index.is_repeat(tag, 2, 8)
    assert not index.is_repeat(Tag("other", 0, 1, tag.digest), 2, 8)


def test_expired_and_excess_keys_are_forgotten() -> None:
    expired = IdempotencyIndex(window_s=0, max_keys=10)
    [tag] = tags_for("k", [("message", None, 1)])
    expired.record(tag, 0, 1, None)
    assert expired.lookup("k") is None
    small = IdempotencyIndex(window_s=60, max_keys=2)
    for name in ("a", "b", "c"):
        [t] = tags_for(name, [("message", None, 1)])
        small.record(t, 0, 1, None)
    assert small.lookup("a") is None
    assert small.lookup("b") is not None and small.lookup("c") is not None


def test_a_local_answer_never_decides_which_copy_is_delivered() -> None:
    """A retry answered here before the consumer saw the first copy: the consumer still
    delivers the first copy in partition order, as every other instance does."""
    index = IdempotencyIndex(window_s=60, max_keys=10)
    [tag] = tags_for("k", [("message", None, 1)])
    index.answered(tag, 0, 9, None)  # this instance wrote a second copy at offset 9
    assert index.lookup("k") is not None  # a further retry is answered at once
    assert not index.is_repeat(tag, 0, 4)  # the first copy (offset 4) is delivered...
    index.record(tag, 0, 4, None)
    assert index.is_repeat(tag, 0, 9)  # ...and the second is not
