"""service/cursor.py: the cursor codec is exact, URL-safe and rejects anything not its own."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import string
import zlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service.cursor import MAX_CURSOR_CHARS, Cursor, Reading
from service.errors import BadCursor, Malformed

TOPIC = "orders"
URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
URL_SAFE_ALPHABET = string.ascii_letters + string.digits + "-_"

topics = st.from_regex(r"[A-Za-z0-9._-]{1,60}", fullmatch=True)
positions = st.dictionaries(
    st.integers(min_value=0, max_value=1023),
    st.integers(min_value=0, max_value=2**63 - 1),
    max_size=64,
)
# A replacement character: mostly near-misses (base64 alphabets, padding), sometimes anything.
replacements = st.sampled_from(URL_SAFE_ALPHABET + "+/= .!") | st.characters()


def forge(topic: str, body: bytes) -> str:
    """A cursor with a valid checksum around an arbitrary body, as the module docstring says."""
    digest = hashlib.blake2b(topic.encode() + b"\0" + body, digest_size=6).digest()
    raw = body + digest
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# -- construction ---------------------------------------------------------------------------


def test_after_names_the_offset_following_the_record() -> None:
    assert Cursor.after(2, 41) == Cursor(((2, 42),))


def test_of_orders_partitions_ascending() -> None:
    assert Cursor.of({2: 5, 0: 1, 1: 9}).offsets == ((0, 1), (1, 9), (2, 5))


def test_as_dict_maps_partition_to_next_offset() -> None:
    assert Cursor(((0, 3), (4, 7))).as_dict() == {0: 3, 4: 7}


def test_empty_cursor_round_trips() -> None:
    assert Cursor.decode(TOPIC, Cursor().encode(TOPIC)) == Cursor()


def test_encoding_has_no_base64_padding() -> None:
    for cursor in (Cursor(), Cursor.after(0, 0), Cursor.of({0: 1, 1: 2**40})):
        assert "=" not in cursor.encode(TOPIC)


def test_encoding_depends_on_the_topic() -> None:
    cursor = Cursor.after(0, 10)
    assert cursor.encode("a") != cursor.encode("b")


# -- rejection ------------------------------------------------------------------------------


def test_bad_cursor_is_a_malformed_request_400() -> None:
    error = BadCursor("x")
    assert isinstance(error, Malformed)
    assert error.status == 400
    assert error.problem()["type"] == "urn:herald:problem:bad-cursor"


def test_decode_rejects_an_empty_string() -> None:
    with pytest.raises(BadCursor):
        Cursor.decode(TOPIC, "")


def test_decode_rejects_text_longer_than_the_limit() -> None:
    with pytest.raises(BadCursor):
        Cursor.decode(TOPIC, "A" * (MAX_CURSOR_CHARS + 1))


def test_decode_rejects_non_base64() -> None:
    with pytest.raises(BadCursor):
        Cursor.decode(TOPIC, "!!!!!!!!")


def test_decode_rejects_non_ascii() -> None:
    with pytest.raises(BadCursor):
        Cursor.decode(TOPIC, "AQé" + Cursor().encode(TOPIC))


def test_decode_rejects_another_topics_cursor() -> None:
    with pytest.raises(BadCursor):
        Cursor.decode("payments", Cursor.after(0, 5).encode(TOPIC))


def test_decode_rejects_an_unknown_version() -> None:
    with pytest.raises(BadCursor, match="version"):
        Cursor.decode(TOPIC, forge(TOPIC, bytes([2, 0, 1])))


def test_decode_rejects_too_short_raw_bytes() -> None:
    text = base64.urlsafe_b64encode(bytes([1, 0, 0])).rstrip(b"=").decode()
    with pytest.raises(BadCursor):
        Cursor.decode(TOPIC, text)


def test_decode_rejects_partitions_out_of_order_even_with_a_valid_checksum() -> None:
    with pytest.raises(BadCursor, match="order"):
        Cursor.decode(TOPIC, forge(TOPIC, bytes([1, 2, 0, 1, 0])))


def test_decode_rejects_a_repeated_partition_even_with_a_valid_checksum() -> None:
    with pytest.raises(BadCursor, match="order"):
        Cursor.decode(TOPIC, forge(TOPIC, bytes([1, 3, 0, 3, 5])))


def test_decode_rejects_a_partition_without_offset() -> None:
    with pytest.raises(BadCursor, match="truncated"):
        Cursor.decode(TOPIC, forge(TOPIC, bytes([1, 3])))


def test_decode_rejects_an_unterminated_varint() -> None:
    with pytest.raises(BadCursor, match="truncated"):
        Cursor.decode(TOPIC, forge(TOPIC, bytes([1, 0, 0x80, 0x80])))


def test_decode_rejects_an_overlong_varint() -> None:
    with pytest.raises(BadCursor, match="truncated"):
        Cursor.decode(TOPIC, forge(TOPIC, bytes([1, 0]) + b"\xff" * 12 + b"\x01"))


def test_decode_rejects_a_cursor_of_a_topic_whose_crc32_collides() -> None:
    # A CRC-32 of the topic would bind a cursor to it too weakly: "plumless" and "buckeroo"
    # are a well-known colliding pair (both legal topic names).
    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")
    text = Cursor.after(0, 7).encode("plumless")
    with pytest.raises(BadCursor):
        Cursor.decode("buckeroo", text)


# -- properties -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(topic=topics, offsets=positions)
def test_round_trip_of_any_partition_offset_map(topic: str, offsets: dict[int, int]) -> None:
    cursor = Cursor.of(offsets)
    decoded = Cursor.decode(topic, cursor.encode(topic))
    assert decoded == cursor
    assert decoded.as_dict() == offsets


@settings(max_examples=200, deadline=None)
@given(topic=topics, offsets=positions)
def test_encoding_is_url_safe(topic: str, offsets: dict[int, int]) -> None:
    text = Cursor.of(offsets).encode(topic)
    assert URL_SAFE.fullmatch(text)
    assert len(text) <= MAX_CURSOR_CHARS


@settings(max_examples=200, deadline=None)
@given(topic=topics, other=topics, offsets=positions)
def test_decoding_with_another_topic_raises_bad_cursor(
    topic: str, other: str, offsets: dict[int, int]
) -> None:
    assume(other != topic)
    with pytest.raises(BadCursor):
        Cursor.decode(other, Cursor.of(offsets).encode(topic))


@settings(max_examples=200, deadline=None)
@given(topic=topics, offsets=positions, data=st.data())
def test_a_changed_character_never_decodes_to_another_cursor(
    topic: str, offsets: dict[int, int], data: st.DataObject
) -> None:
    original = Cursor.of(offsets)
    text = original.encode(topic)
    index = data.draw(st.integers(min_value=0, max_value=len(text) - 1), label="index")
    replacement = data.draw(replacements.filter(lambda c: c != text[index]), label="char")
    changed = text[:index] + replacement + text[index + 1 :]
    try:
        decoded = Cursor.decode(topic, changed)
    except BadCursor:
        return
    # Only a spelling of the same bytes (unused trailing bits, "+" for "-") may get through.
    assert decoded == original


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200) | st.text(alphabet=URL_SAFE_ALPHABET, max_size=200))
def test_random_text_decodes_or_raises_only_bad_cursor(text: str) -> None:
    # Any exception other than BadCursor escapes and fails the test.
    with contextlib.suppress(BadCursor):
        Cursor.decode(TOPIC, text)


@given(
    topic=topics,
    start=positions.filter(bool),
    moves=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=2**63 - 1)),
        max_size=40,
    ),
)
def test_a_reading_names_the_same_cursor_texts_as_cursors_made_afresh(
    topic: str, start: dict[int, int], moves: list[tuple[int, int]]
) -> None:
    reading = Reading(topic, start)
    expected = dict(start)
    partitions = sorted(start)
    for pick, offset in moves:
        partition = partitions[pick % len(partitions)]
        expected[partition] = offset
        text = reading.after(partition, offset)
        assert text == Cursor.of(expected).encode(topic)
        assert Cursor.decode(topic, text) == Cursor.of(expected)
