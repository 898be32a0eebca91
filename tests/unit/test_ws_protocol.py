"""service/transports/ws_protocol.py: subprotocols and what a client op holds."""

from __future__ import annotations

import pytest

from service.transports.ws_protocol import (
    CLOSE_MALFORMED,
    SUBPROTOCOLS,
    ProtocolViolation,
    negotiate,
    ref_field,
    text_field,
)


def test_the_first_offered_known_subprotocol_wins() -> None:
    assert negotiate(["x", "herald.v1.batch.json", "herald.v1.json"]) == "herald.v1.batch.json"
    assert negotiate(["herald.v1.msgpack", "herald.v1.batch.msgpack"]) == "herald.v1.msgpack"
    assert negotiate([]) == ""
    assert negotiate(["chat"]) is None


def test_only_the_batch_subprotocols_take_batches() -> None:
    assert {name for name, (_fmt, batch) in SUBPROTOCOLS.items() if batch} == {
        "herald.v1.batch.json",
        "herald.v1.batch.msgpack",
    }


def test_a_key_is_held_to_the_length_a_publish_may_give_it() -> None:
    assert text_field({"key": "k" * 256}, "key", False) == "k" * 256
    with pytest.raises(ProtocolViolation) as refused:
        text_field({"key": "k" * 257}, "key", False)
    assert refused.value.code == CLOSE_MALFORMED


@pytest.mark.parametrize("value", ["", 7, "a\nb", "\ud800"])
def test_a_field_that_is_no_printable_text_is_refused(value: object) -> None:
    with pytest.raises(ProtocolViolation):
        text_field({"topic": value}, "topic", True)


def test_a_ref_is_a_short_string_or_an_integer() -> None:
    assert ref_field({"ref": 7}) == 7
    assert ref_field({}) is None
    for bad in (True, 1.5, "r" * 129, ["x"]):
        with pytest.raises(ProtocolViolation):
            ref_field({"ref": bad})
