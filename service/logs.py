"""Logging setup: one format, and no flood while Kafka is away."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

from aiokafka.errors import LeaderNotAvailableError, NotLeaderForPartitionError

from . import request_log


class RepeatFilter(logging.Filter):
    """Lets one message template through per ``interval`` seconds, then says how many it held.

    aiokafka logs every reconnect attempt (ten a second) while a broker is down; the first
    line says what is wrong, the rest only bury other logs.
    """

    # Templates remembered at most: a message formatted before logging (every one different)
    # must not grow the filter without bound.
    KEPT = 1000

    def __init__(
        self, interval: float = 30.0, exempt: frozenset[str] = request_log.EVERY_LINE
    ) -> None:
        super().__init__()
        self._interval = interval
        # Loggers whose every line counts (one per connection, one per request).
        self._exempt = exempt
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name in self._exempt:
            return True
        now = time.monotonic()
        key = (record.name, record.msg)
        if key not in self._last and len(self._last) >= self.KEPT:
            horizon = now - self._interval
            self._last = {k: v for k, v in self._last.items() if v[0] > horizon}
            if len(self._last) >= self.KEPT:
                self._last.clear()
        last, held = self._last.get(key, (-self._interval, 0))
        if now - last < self._interval:
            self._last[key] = (last, held + 1)
            return False
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in {self._interval:.0f}s)"
        return True


class RetriedMetadataErrors(logging.Filter):
    """Logs aiokafka's errors from stale leadership as warnings, as they are: routine.

    aiokafka logs ERROR when a request meets a partition whose leader moved or is not yet in
    place (a new topic, a leader election), then refreshes its metadata and retries by itself.
    Nothing is lost and nobody need act; an operator alerting on ERROR should not be paged.
    Connection errors and everything else keep their level.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.ERROR
            and record.name.startswith("aiokafka")
            and isinstance(record.args, tuple)
            and any(_stale_leadership(arg) for arg in record.args)
        ):
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        return True


def _stale_leadership(arg: object) -> bool:
    return isinstance(arg, (NotLeaderForPartitionError, LeaderNotAvailableError))


class RequestIds(logging.Filter):
    """Adds the id of the request being handled (request_log) to each record's ``fields``."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_log.request_id()
        if request_id is not None:
            # A copy: the caller's dict may be shared by several records.
            fields = getattr(record, "fields", None)
            record.fields = (
                {**fields, "request_id": request_id} if fields else {"request_id": request_id}
            )
        return True


class EscapingFormatter(logging.Formatter):
    """Writes each message on one line: control characters a client could put into a logged
    value (a path, a topic name) are escaped, so no one can forge a log line. The request id,
    if any, ends the line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escaped(record.message)
        line = super().formatMessage(record)
        request_id = getattr(record, "fields", {}).get("request_id")
        return line if request_id is None else f"{line} request_id={request_id}"


def escaped(text: str) -> str:
    """``text`` with line breaks and other control characters as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: what a log collector parses."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in getattr(record, "fields", {}).items():
            entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str = "text") -> None:
    logging.basicConfig(level=level.upper())
    retried = RetriedMetadataErrors()
    repeat = RepeatFilter()
    request_ids = RequestIds()
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter()
    else:
        formatter = EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
        handler.addFilter(retried)
        handler.addFilter(repeat)
        handler.addFilter(request_ids)
    # Hypercorn logs through its own handler as well as ours: keep one copy.
    logging.getLogger("hypercorn.error").propagate = False
    # httpx (the CDN purges) logs every request at INFO: failures are logged by the caller.
    logging.getLogger("httpx").setLevel(logging.WARNING)
