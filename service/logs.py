"""Logging setup: one format, and no flood while Kafka is away."""

from __future__ import annotations

import logging
import time

from aiokafka.errors import LeaderNotAvailableError, NotLeaderForPartitionError


class RepeatFilter(logging.Filter):
    """Lets one message template through per ``interval`` seconds, then says how many it held.

    aiokafka logs every reconnect attempt (ten a second) while a broker is down; the first
    line says what is wrong, the rest only bury other logs.
    """

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        key = (record.name, record.msg)
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


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    retried = RetriedMetadataErrors()
    repeat = RepeatFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(retried)
        handler.addFilter(repeat)
    # Hypercorn logs through its own handler as well as ours: keep one copy.
    logging.getLogger("hypercorn.error").propagate = False
    # httpx (the CDN purges) logs every request at INFO: failures are logged by the caller.
    logging.getLogger("httpx").setLevel(logging.WARNING)
