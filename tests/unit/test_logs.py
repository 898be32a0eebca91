"""Logging filters: retried leadership errors become warnings; repeats are held back."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    LeaderNotAvailableError,
    NotLeaderForPartitionError,
)

from service.logs import RepeatFilter, RetriedMetadataErrors


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
