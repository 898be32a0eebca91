"""A connection's one timer: heartbeats while it is quiet, a deadline while it writes."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from .outbox import Outbox


class Pulse:
    """A connection's one timer: a heartbeat frame after ``heartbeat_s`` of silence, and
    ``on_stuck`` once a single write has taken longer than ``send_timeout_s``.

    The timer re-arms itself: a quiet connection's fires once per heartbeat interval, and
    a write (``writing``) brings it forward to the write's deadline only when it would fire
    later. Nothing is scheduled per event or per write.
    """

    __slots__ = (
        "_due",
        "_heartbeat",
        "_heartbeat_s",
        "_on_stuck",
        "_outbox",
        "_send_timeout_s",
        "_timer",
    )

    def __init__(
        self,
        outbox: Outbox,
        heartbeat: bytes | str,
        heartbeat_s: float,
        send_timeout_s: float | None = None,
        on_stuck: Callable[[], None] | None = None,
    ) -> None:
        self._outbox = outbox
        self._heartbeat = heartbeat
        self._heartbeat_s = heartbeat_s
        self._send_timeout_s = send_timeout_s if on_stuck is not None else None
        self._on_stuck = on_stuck
        self._timer: asyncio.TimerHandle | None = None
        self._due = math.inf  # time.monotonic() at which the timer fires

    def start(self) -> None:
        self._arm(self._heartbeat_s, time.monotonic())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def writing(self, now: float) -> None:
        """A write begins at ``now`` (time.monotonic()): it has ``send_timeout_s`` to end."""
        self._outbox.writing_since = now
        timeout = self._send_timeout_s
        if timeout is not None and self._timer is not None and self._due > now + timeout:
            self._arm(timeout, now)

    def _arm(self, delay: float, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._due = now + delay
        self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        outbox = self._outbox
        now = time.monotonic()
        quiet = now - outbox.drained_at
        writing_since = outbox.writing_since
        if writing_since:
            # Inside a write the connection is not quiet; its deadline is what matters.
            due = self._heartbeat_s
            if self._send_timeout_s is not None:
                left = writing_since + self._send_timeout_s - now
                if left <= 0:
                    assert self._on_stuck is not None
                    self._on_stuck()
                    return
                due = min(due, left)
        elif quiet >= self._heartbeat_s:
            # Keeps proxies and load balancers from closing a quiet connection.
            outbox.put_control(self._heartbeat)
            due = self._heartbeat_s
        else:
            due = self._heartbeat_s - quiet
        self._arm(max(due, 0.001), now)
