"""service/validation.py: published events are checked against event-in.schema.json."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import Invalid
from service.events import EventIn
from service.validation import SCHEMAS_DIR, EventValidator

MAX_BATCH = 3
validator = EventValidator(max_batch=MAX_BATCH)


def invalid(body: Any) -> Invalid:
    with pytest.raises(Invalid) as caught:
        validator.batch(body)
    return caught.value


def paths(error: Invalid) -> list[str]:
    return [item["path"] for item in error.errors]


# -- valid ----------------------------------------------------------------------------------


def test_the_schema_is_found_next_to_the_service() -> None:
    assert (SCHEMAS_DIR / "event-in.schema.json").is_file()


def test_a_single_event_with_only_data_gets_the_default_type() -> None:
    assert validator.batch({"data": {"text": "hi"}}) == [EventIn(data={"text": "hi"})]


def test_a_single_event_keeps_its_type_and_key() -> None:
    body = {"type": "order.created", "key": "user-42", "data": [1, 2]}
    assert validator.batch(body) == [EventIn(data=[1, 2], key="user-42", type="order.created")]


@pytest.mark.parametrize("data", [None, 0, "text", [], {}, False, 1.5])
def test_any_json_value_is_valid_data(data: Any) -> None:
    assert validator.batch({"data": data}) == [EventIn(data=data)]


def test_binary_data_from_msgpack_is_valid() -> None:
    assert validator.batch({"data": b"\x00\xff"}) == [EventIn(data=b"\x00\xff")]


def test_a_batch_becomes_events_in_order() -> None:
    body = [{"data": 1}, {"data": 2, "key": "k"}, {"data": 3, "type": "t"}]
    assert validator.batch(body) == [
        EventIn(data=1),
        EventIn(data=2, key="k"),
        EventIn(data=3, type="t"),
    ]


def test_one_validates_a_single_event() -> None:
    assert validator.one({"data": 1, "type": "chat:typing"}) == EventIn(data=1, type="chat:typing")


@pytest.mark.parametrize("event_type", ["a", "A9", "order.created", "chat:typing", "x-y_z"])
def test_token_types_are_valid(event_type: str) -> None:
    assert validator.batch({"data": 1, "type": event_type})[0].type == event_type


def test_a_type_of_64_characters_is_valid() -> None:
    assert validator.batch({"data": 1, "type": "t" * 64})[0].type == "t" * 64


def test_a_key_with_unicode_is_valid() -> None:
    assert validator.batch({"data": 1, "key": "usér 42 ✓"})[0].key == "usér 42 ✓"


# -- batch limits ---------------------------------------------------------------------------


def test_an_empty_batch_is_invalid() -> None:
    error = invalid([])
    assert paths(error) == [""]


def test_a_batch_longer_than_the_maximum_is_invalid() -> None:
    error = invalid([{"data": n} for n in range(MAX_BATCH + 1)])
    assert str(MAX_BATCH) in error.detail
    assert paths(error) == [""]


def test_a_batch_of_exactly_the_maximum_is_valid() -> None:
    assert len(validator.batch([{"data": n} for n in range(MAX_BATCH)])) == MAX_BATCH


# -- schema violations ----------------------------------------------------------------------


def test_invalid_is_a_422_problem_listing_the_errors() -> None:
    error = invalid({"data": 1, "type": ""})
    assert error.status == 422
    problem = error.problem()
    assert problem["type"] == "urn:herald:problem:invalid"
    assert problem["errors"] == error.errors
    assert all(set(item) == {"path", "message"} for item in error.errors)


def test_missing_data_is_invalid_at_the_root() -> None:
    error = invalid({"type": "t"})
    assert paths(error) == [""]
    assert "data" in error.errors[0]["message"]


def test_an_unknown_field_is_invalid() -> None:
    error = invalid({"data": 1, "priority": "high"})
    assert paths(error) == [""]
    assert "priority" in error.errors[0]["message"]


def test_a_wrong_field_type_is_reported_at_the_field() -> None:
    assert paths(invalid({"data": 1, "key": 42})) == ["/key"]


@pytest.mark.parametrize(
    "event_type", ["message\n", "a\nb", "", "-a", "two words", "t" * 65, "tab\t", "é"]
)
def test_a_type_that_is_not_one_token_is_invalid(event_type: str) -> None:
    assert set(paths(invalid({"data": 1, "type": event_type}))) == {"/type"}


@pytest.mark.parametrize("key", ["", "line\nbreak", "trailing\n", "nul\x00", "del\x7f", "k" * 257])
def test_a_key_with_control_characters_or_bad_length_is_invalid(key: str) -> None:
    assert set(paths(invalid({"data": 1, "key": key}))) == {"/key"}


@pytest.mark.parametrize("body", ["text", 5, None, True])
def test_a_body_that_is_not_an_object_is_invalid(body: Any) -> None:
    assert paths(invalid(body)) == [""]


def test_errors_in_a_batch_carry_the_item_index() -> None:
    error = invalid([{"data": 1}, {"data": 2, "type": "bad type"}, {"key": "k"}])
    assert sorted(paths(error)) == ["/1/type", "/2"]


def test_a_non_object_in_a_batch_is_invalid_at_its_index() -> None:
    assert paths(invalid([{"data": 1}, [{"data": 2}]])) == ["/1"]


def test_every_violation_of_one_event_is_reported() -> None:
    error = invalid({"data": 1, "type": "", "key": 5, "extra": True})
    assert set(paths(error)) == {"", "/key", "/type"}
