"""Request ids, the access log's view of a URL, and the lines of a streaming connection."""

from __future__ import annotations

import contextvars
import logging
import re

import pytest

from service import request_log
from service.request_log import ConnectionLog, request_id_of, target

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()
GENERATED = re.compile(r"[0-9a-f]{16}")


def test_a_sane_request_id_from_the_client_is_kept() -> None:
    headers = [(b"x-request-id", b"req-42.A_b"), (b"traceparent", TRACEPARENT)]
    assert request_id_of(headers) == "req-42.A_b"


@pytest.mark.parametrize(
    "given",
    [b"", b"x" * 129, b"has space", b"new\nline", b'quote"d', "caf\u00e9".encode()],
    ids=["empty", "too-long", "space", "newline", "quote", "non-ascii"],
)
def test_an_insane_request_id_is_replaced(given: bytes) -> None:
    assert GENERATED.fullmatch(request_id_of([(b"x-request-id", given)]))
    # ... by the trace id when there is one.
    assert request_id_of([(b"x-request-id", given), (b"traceparent", TRACEPARENT)]) == TRACE_ID


def test_the_longest_sane_request_id_is_kept() -> None:
    assert request_id_of([(b"x-request-id", b"a" * 128)]) == "a" * 128


def test_the_first_request_id_header_wins() -> None:
    assert request_id_of([(b"x-request-id", b"one"), (b"x-request-id", b"two")]) == "one"


def test_the_trace_id_of_a_traceparent_is_the_request_id() -> None:
    assert request_id_of([(b"traceparent", TRACEPARENT)]) == TRACE_ID
    # A later version may append fields.
    later = f"01-{TRACE_ID}-00f067aa0ba902b7-01-extra".encode()
    assert request_id_of([(b"traceparent", later)]) == TRACE_ID


@pytest.mark.parametrize(
    "traceparent",
    [
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # an all-zero trace id is invalid
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # version ff is invalid
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",  # hex digits are lower case
        f"00-{TRACE_ID}-00f067aa0ba902b7-01x",
        "garbage",
    ],
)
def test_an_invalid_traceparent_is_not_used(traceparent: str) -> None:
    assert GENERATED.fullmatch(request_id_of([(b"traceparent", traceparent.encode())]))


def test_without_either_header_each_request_gets_a_new_id() -> None:
    ids = {request_id_of([(b"host", b"example")]) for _ in range(100)}
    assert len(ids) == 100 and all(GENERATED.fullmatch(i) for i in ids)


def test_the_current_request_is_the_one_of_its_context() -> None:
    def handle() -> tuple[str | None, int | None]:
        exchange = request_log.begin({"headers": [(b"x-request-id", b"abc")]})
        request_log.answered(204)
        return request_log.request_id(), exchange.status

    assert contextvars.copy_context().run(handle) == ("abc", 204)
    assert request_log.request_id() is None  # nothing leaked out of that context
    assert request_log.id_header() == []


@pytest.mark.parametrize(
    ("path", "query", "shown"),
    [
        ("/v1/topics/t/events", b"", "/v1/topics/t/events"),
        ("/v1/topics/t/events", b"after=abc&wait=5", "/v1/topics/t/events?after=abc&wait=5"),
        ("/v1/ws", b"topic=t&access_token=eyJ.x.y", "/v1/ws?topic=t&access_token=***"),
        ("/x", b"access%5Ftoken=eyJ.x.y", "/x?access%5Ftoken=***"),
        ("/x", b"token=s3cret&password=hunter2", "/x?token=***&password=***"),
        ("/x", b"flag&key=k", "/x?flag=***&key=k"),
        ("/x", b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig&limit=1", "/x?***&limit=1"),
    ],
    ids=[
        "no-query",
        "herald-parameters",
        "access-token",
        "encoded-name",
        "others",
        "bare",
        "token-as-name",
    ],
)
def test_the_access_log_shows_only_values_of_parameters_herald_reads(
    path: str, query: bytes, shown: str
) -> None:
    assert target({"path": path, "query_string": query}) == shown


def test_the_access_log_target_is_bounded() -> None:
    assert len(target({"path": "/" + "x" * 5000, "query_string": b""})) == 1000


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = getattr(record, "fields")  # noqa: B009 (set through extra)
    return fields


def test_a_connection_logs_one_line_when_it_opens_and_one_when_it_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="herald.connection")
    lines = ConnectionLog("ws", "192.0.2.7", 1)
    lines.closed(request_log.LAGGING, 2, 17, 4008)
    opened, closed = caplog.records
    assert (opened.name, closed.name) == ("herald.connection", "herald.connection")
    assert _fields(opened) == {
        "connection": "open",
        "transport": "ws",
        "client": "192.0.2.7",
        "topics": 1,
    }
    fields = _fields(closed)
    duration = fields.pop("duration_s")
    assert isinstance(duration, float) and 0 <= duration < 5
    assert fields == {
        "connection": "close",
        "transport": "ws",
        "client": "192.0.2.7",
        "topics": 2,
        "events": 17,
        "reason": "lagging",
        "code": 4008,
    }
    assert closed.getMessage().startswith("WebSocket closed (lagging, 4008) after ")
    assert closed.getMessage().endswith(", from 192.0.2.7 (2 topics, 17 events)")
    assert opened.getMessage() == "WebSocket opened from 192.0.2.7 (1 topic)"


def test_the_reasons_are_a_small_documented_vocabulary() -> None:
    assert request_log.REASONS == (
        "client-left",
        "lagging",
        "stuck",
        "token-expired",
        "shutdown",
        "policy",
        "error",
    )
