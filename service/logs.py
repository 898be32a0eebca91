"""Logging setup: one format, and no flood while Kafka is away."""

from __future__ import annotations

import logging
import time


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


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    repeat = RepeatFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeat)
    # Hypercorn logs through its own handler as well as ours: keep one copy.
    logging.getLogger("hypercorn.error").propagate = False
    # httpx (the CDN purges) logs every request at INFO: failures are logged by the caller.
    logging.getLogger("httpx").setLevel(logging.WARNING)
