"""Logging filters: retried leadership errors become warnings; repeats are held back."""

from __future__ import annotations

import contextvars
import json
import logging

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    LeaderNotAvailableError,
    NotLeaderForPartitionError,
)

from service import request_log
from service.logs import (
    EscapingFormatter,
    JsonFormatter,
    RepeatFilter,
    RequestIds,
    RetriedMetadataErrors,
)


def _record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    ("error", "level"),
    [
        (NotLeaderForPartitionError("TopicPartition(topic='t', partition=2)"), logging.WARNING),
        (LeaderNotAvailableError(), logging.WARNING),
        (KafkaConnectionError("refused"), logging.ERROR),
    ],
    ids=["not-leader", "leader-not-available", "connection"],
)
def test_only_stale_leadership_errors_from_aiokafka_become_warnings(
    error: Exception, level: int
) -> None:
    record = _record(
        "aiokafka.consumer.fetcher", logging.ERROR, "Failed fetch offsets from %s: %s", 1, error
    )
    assert RetriedMetadataErrors().filter(record)
    assert (record.levelno, record.levelname) == (level, logging.getLevelName(level))


def test_other_loggers_keep_their_level() -> None:
    record = _record("service.consume", logging.ERROR, "%s", NotLeaderForPartitionError())
    assert RetriedMetadataErrors().filter(record)
    assert record.levelno == logging.ERROR


def test_a_repeated_message_is_held_then_counted() -> None:
    repeat = RepeatFilter(interval=3600.0)
    assert repeat.filter(_record("aiokafka", logging.WARNING, "down %s", 1))
    assert not repeat.filter(_record("aiokafka", logging.WARNING, "down %s", 2))
    assert not repeat.filter(_record("aiokafka", logging.WARNING, "down %s", 3))


def test_the_count_of_held_messages_is_told_when_the_interval_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("service.logs.time.monotonic", lambda: now[0])
    repeat = RepeatFilter(interval=30.0)
    assert repeat.filter(_record("aiokafka", logging.WARNING, "down"))
    assert not repeat.filter(_record("aiokafka", logging.WARNING, "down"))
    assert not repeat.filter(_record("aiokafka", logging.WARNING, "down"))
    now[0] += 30.0
    later = _record("aiokafka", logging.WARNING, "down")
    assert repeat.filter(later)
    assert later.msg == "down (and 2 more like it in 30s)"


def test_a_logged_value_cannot_forge_a_line() -> None:
    formatter = EscapingFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord(
        "service", logging.INFO, __file__, 1, "path %s", ("/x\nINFO forged",), None
    )
    line = formatter.format(record)
    assert "\n" not in line and "\\n" in line


def test_the_repeat_filter_keeps_a_bounded_number_of_templates() -> None:
    repeat = RepeatFilter(interval=3600)
    for n in range(RepeatFilter.KEPT * 3):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, f"message {n}", None, None)
        assert repeat.filter(record)
    assert len(repeat._last) <= RepeatFilter.KEPT


def test_a_json_log_is_one_object_per_line_with_the_message_escaped() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("service.x", logging.WARNING, __file__, 1, "a\nb %s", ("c",), None)
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "a\nb c"
    assert (entry["level"], entry["logger"]) == ("WARNING", "service.x")
    assert entry["time"].endswith("Z")


def test_every_access_and_connection_line_passes_the_repeat_filter() -> None:
    repeat = RepeatFilter(interval=3600.0)
    for name in ("herald.access", "herald.connection"):
        for n in range(3):
            assert repeat.filter(_record(name, logging.INFO, "%s opened", n))


def _in_request(request_id: bytes, record: logging.LogRecord) -> logging.LogRecord:
    """``record`` through RequestIds while the request with ``request_id`` is handled."""

    def handle() -> None:
        request_log.begin({"headers": [(b"x-request-id", request_id)]})
        assert RequestIds().filter(record)

    contextvars.copy_context().run(handle)
    return record


def test_a_line_logged_while_a_request_is_handled_carries_its_id() -> None:
    shared = {"transport": "sse"}
    record = _record("service.x", logging.INFO, "opened")
    record.fields = shared
    _in_request(b"req-1", record)
    assert record.fields == {"transport": "sse", "request_id": "req-1"}
    assert shared == {"transport": "sse"}  # the caller's dict is not changed
    plain = _in_request(b"req-2", _record("service.x", logging.INFO, "no fields"))
    assert plain.fields == {"request_id": "req-2"}


def test_a_line_logged_outside_of_a_request_has_no_id() -> None:
    record = _record("service.x", logging.INFO, "fan-out")
    assert RequestIds().filter(record)
    assert not hasattr(record, "fields")


def test_the_request_id_ends_a_text_line_and_is_a_field_of_a_json_line() -> None:
    record = _in_request(b"req-3", _record("herald.access", logging.INFO, "GET %s", "/x"))
    text = EscapingFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert text == "INFO herald.access: GET /x request_id=req-3"
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["message"], entry["request_id"]) == ("GET /x", "req-3")
    plain = EscapingFormatter("%(message)s").format(_record("x", logging.INFO, "no id"))
    assert plain == "no id"


def test_structured_fields_are_json_fields() -> None:
    record = _record("herald.connection", logging.INFO, "closed")
    record.fields = {"reason": "lagging", "topics": 2, "duration_s": 1.5}
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["reason"], entry["topics"], entry["duration_s"]) == ("lagging", 2, 1.5)
