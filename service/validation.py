"""Validation of published events against schemas/event-in.schema.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from . import portable
from .errors import Invalid
from .events import DEFAULT_TYPE, EventIn

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


class EventValidator:
    """Checks one event or a batch and turns it into EventIn values."""

    def __init__(self, max_batch: int, schemas_dir: Path = SCHEMAS_DIR) -> None:
        schema = json.loads((schemas_dir / "event-in.schema.json").read_text())
        Draft202012Validator.check_schema(schema)
        self._validator = Draft202012Validator(schema)
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
        errors = [
            {
                "path": path + "".join(f"/{part}" for part in error.absolute_path),
                "message": error.message,
            }
            for error in self._validator.iter_errors(item)
        ]
        if not errors:
            for name in ("data", "key", "type"):
                found = portable.problem(item.get(name))
                if found:
                    errors.append({"path": f"{path}/{name}", "message": f"holds {found}"})
        return errors


def _event(item: dict[str, Any]) -> EventIn:
    return EventIn(data=item["data"], key=item.get("key"), type=item.get("type", DEFAULT_TYPE))
