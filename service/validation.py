"""Validation of published events against schemas/event-in.schema.json."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from . import portable
from .errors import Invalid
from .events import DEFAULT_TYPE, EventIn

# The project's schemas/, shipped inside the package (service/schemas): found the same way in a
# checkout and in an installed wheel.
SCHEMAS = resources.files("service").joinpath("schemas")


def schema_text(name: str) -> str:
    """One of the shipped JSON Schema or OpenAPI documents."""
    return SCHEMAS.joinpath(name).read_text(encoding="utf-8")


class EventValidator:
    """Checks one event or a batch and turns it into EventIn values."""

    def __init__(self, max_batch: int, schema: dict[str, Any] | None = None) -> None:
        """Events as ``schema`` says (default: the shipped event-in.schema.json)."""
        schema = schema or json.loads(schema_text("event-in.schema.json"))
        Draft202012Validator.check_schema(schema)
        self._validator = Draft202012Validator(schema)
        self._shape = _Shape.of(schema)
        self._max_batch = max_batch

    def batch(self, body: Any) -> list[EventIn]:
        """A request body (one event object or an array of them) as events."""
        items = body if isinstance(body, list) else [body]
        if not items:
            raise Invalid("the batch is empty", [{"path": "", "message": "at least one event"}])
        if len(items) > self._max_batch:
            raise Invalid(
                f"a batch holds at most {self._max_batch} events",
                [{"path": "", "message": f"{len(items)} events"}],
            )
        paths = [f"/{i}" for i in range(len(items))] if isinstance(body, list) else [""]
        errors = [
            error
            for item, path in zip(items, paths, strict=True)
            for error in self._errors(item, path)
        ]
        if errors:
            raise Invalid("the body does not match event-in.schema.json", errors)
        return [_event(item) for item in items]

    def one(self, item: Any) -> EventIn:
        """One event (a WebSocket publish op's fields)."""
        errors = self._errors(item, "")
        if errors:
            raise Invalid("the event does not match event-in.schema.json", errors)
        return _event(item)

    def _errors(self, item: Any, path: str) -> list[dict[str, str]]:
        # jsonschema costs more than the rest of a small publish: it only says what is wrong
        # with an event the shape did not accept.
        if self._shape is None or not self._shape.accepts(item):
            errors = [
                {
                    "path": path + "".join(f"/{part}" for part in error.absolute_path),
                    "message": error.message,
                }
                for error in self._validator.iter_errors(item)
            ]
            if errors:
                return errors
        return [
            {"path": f"{path}/{name}", "message": f"holds {found}"}
            for name in ("data", "key", "type")
            if (found := portable.problem(item.get(name)))
        ]


# What _Shape understands of a schema; a schema saying anything more is left to jsonschema.
_SCHEMA_WORDS = {
    "$schema",
    "$id",
    "title",
    "description",
    "examples",
    "type",
    "properties",
    "required",
    "additionalProperties",
}
_ANY_VALUE = {"description", "examples"}
_STRING_WORDS = _ANY_VALUE | {"type", "minLength", "maxLength", "pattern"}


class _Shape:
    """The schema's object rules, checked in plain Python: it accepts only what the schema
    accepts (an object with the required and no other properties, strings within their
    lengths and patterns), and says no to anything else for jsonschema to explain."""

    def __init__(
        self,
        required: frozenset[str],
        allowed: frozenset[str],
        strings: dict[str, tuple[int, int | None, re.Pattern[str] | None]],
    ) -> None:
        self._required = required
        self._allowed = allowed
        self._strings = strings

    @classmethod
    def of(cls, schema: dict[str, Any]) -> _Shape | None:
        """The shape of ``schema``, or None when it says something a shape does not know."""
        properties: dict[str, dict[str, Any]] = schema.get("properties", {})
        if (
            not schema.keys() <= _SCHEMA_WORDS
            or schema.get("type") != "object"
            or schema.get("additionalProperties") is not False
        ):
            return None
        for rules in properties.values():
            is_string = rules.get("type") == "string" and rules.keys() <= _STRING_WORDS
            if not is_string and not rules.keys() <= _ANY_VALUE:
                return None
        strings = {
            name: (
                rules.get("minLength", 0),
                rules.get("maxLength"),
                re.compile(rules["pattern"]) if "pattern" in rules else None,
            )
            for name, rules in properties.items()
            if "type" in rules
        }
        return cls(frozenset(schema.get("required", ())), frozenset(properties), strings)

    def accepts(self, item: Any) -> bool:
        if not isinstance(item, dict) or not self._required <= item.keys() <= self._allowed:
            return False
        for name, (shortest, longest, pattern) in self._strings.items():
            if name not in item:
                continue
            value = item[name]
            if not isinstance(value, str) or len(value) < shortest:
                return False
            if longest is not None and len(value) > longest:
                return False
            # jsonschema's "pattern" is re.search, as here.
            if pattern is not None and pattern.search(value) is None:
                return False
        return True


def _event(item: dict[str, Any]) -> EventIn:
    return EventIn(data=item["data"], key=item.get("key"), type=item.get("type", DEFAULT_TYPE))
