"""service/validation.py: published events are checked against event-in.schema.json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from service.errors import Invalid
from service.events import EventIn
from service.validation import SCHEMAS, EventValidator, _Shape, schema_text

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
    assert SCHEMAS.joinpath("event-in.schema.json").is_file()


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


# -- the shape: jsonschema's verdict without jsonschema -------------------------------------

SCHEMA = json.loads(schema_text("event-in.schema.json"))
SCHEMA_VALIDATOR = Draft202012Validator(SCHEMA)
SHAPE = _Shape.of(SCHEMA)

texts = st.one_of(
    st.text(max_size=70),
    st.text(alphabet="aZ9._:-\n\t\x00\x7f é✓", max_size=70),
    st.text(min_size=250, max_size=260),
)
values = st.one_of(st.none(), st.booleans(), st.integers(), texts, st.binary(max_size=4))
events = st.one_of(
    st.fixed_dictionaries(
        {"data": values},
        optional={"type": st.one_of(texts, values), "key": st.one_of(texts, values)},
    ),
    st.dictionaries(st.sampled_from(["data", "type", "key", "extra"]), values, max_size=4),
    values,
    st.lists(values, max_size=2),
)


def test_the_shipped_schema_has_a_shape() -> None:
    assert SHAPE is not None


@given(events)
def test_the_shape_accepts_only_what_the_schema_accepts(item: Any) -> None:
    assert SHAPE is not None
    if SHAPE.accepts(item):
        assert SCHEMA_VALIDATOR.is_valid(item)


@given(
    st.fixed_dictionaries(
        {"data": values},
        optional={
            "type": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z"),
            "key": st.text(
                alphabet=st.characters(blacklist_categories=["Cc", "Cs"]), min_size=1, max_size=256
            ),
        },
    )
)
def test_the_shape_accepts_every_valid_event(item: dict[str, Any]) -> None:
    assert SHAPE is not None and SCHEMA_VALIDATOR.is_valid(item) and SHAPE.accepts(item)


@pytest.mark.parametrize(
    "change",
    [
        {"minProperties": 1},
        {"additionalProperties": True},
        {"properties": {**SCHEMA["properties"], "data": {"type": "object"}}},
        {"properties": {**SCHEMA["properties"], "data": {"minLength": 1}}},
        {"properties": {**SCHEMA["properties"], "key": {"type": "string", "format": "uuid"}}},
    ],
)
def test_a_schema_saying_more_than_a_shape_knows_has_none(change: dict[str, Any]) -> None:
    assert _Shape.of({**SCHEMA, **change}) is None


def test_without_a_shape_jsonschema_decides_alone() -> None:
    strict = EventValidator(max_batch=MAX_BATCH, schema={**SCHEMA, "maxProperties": 1})
    assert strict.batch({"data": 1}) == [EventIn(data=1)]
    with pytest.raises(Invalid):
        strict.batch({"data": 1, "key": "k"})
