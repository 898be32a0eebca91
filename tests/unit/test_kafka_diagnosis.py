"""service/kafka/diagnosis.py: aiokafka's word on a failed connection, said once, with a hint."""

from __future__ import annotations

import logging

import pytest

from service.config import Settings
from service.kafka.clients import AioKafka
from service.kafka.diagnosis import ConnectionTrouble, explain, watch

SASL = Settings(
    kafka_bootstrap="kafka-1:9093",
    kafka_security_protocol="SASL_SSL",
    kafka_sasl_username="herald",
    kafka_sasl_password="secret-password",
)


def test_the_filter_keeps_a_bootstrap_failure_and_drops_the_record() -> None:
    trouble = ConnectionTrouble()
    record = logging.LogRecord(
        "aiokafka", logging.ERROR, __file__, 1, 'Unable connect to "%s": %s', ("k:1", "boom"), None
    )
    assert trouble.filter(record) is False
    assert trouble.recent(60) == "k:1: boom"
    other = logging.LogRecord("aiokafka", logging.WARNING, __file__, 1, "other", None, None)
    assert trouble.filter(other) is True


def test_watch_installs_one_filter_on_aiokafkas_logger() -> None:
    assert watch() is watch()
    filters = logging.getLogger("aiokafka").filters
    assert sum(isinstance(f, ConnectionTrouble) for f in filters) == 1


@pytest.mark.parametrize(
    ("cause", "hint"),
    [
        ("[Error 58] SaslAuthenticationFailed: Authentication failed", "refused the login"),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", "HERALD_KAFKA_SSL_CA_FILE"),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] Hostname mismatch", "does not name the host"),
        ("[Errno 111] Connect call failed ('127.0.0.1', 1)", "nothing accepts connections"),
        ("KafkaConnectionError: Connection at k:1 closed", "HERALD_KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_each_cause_gets_the_hint_that_names_what_to_check(cause: str, hint: str) -> None:
    line = explain(SASL, cause)
    assert line.startswith(
        "cannot connect to Kafka at kafka-1:9093 (SASL_SSL, SCRAM-SHA-512 as 'herald'): "
    )
    assert cause in line and hint in line
    assert "secret-password" not in line


def test_a_cause_without_a_hint_is_said_as_it_is() -> None:
    line = explain(Settings(), "something new")
    assert line == "cannot connect to Kafka at 127.0.0.1:9092 (PLAINTEXT): something new"


def test_a_timeout_without_a_logged_cause_says_how_long_it_waited() -> None:
    kafka = AioKafka(Settings(publish_timeout_s=2))
    assert kafka.explain(TimeoutError()).endswith("no answer within 2000 ms")
