"""What the subscribers of one generator process received: counts, latencies, controls."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from .histogram import Histogram, Timeline


class Tally:
    """What every subscriber of one generator process received, counted together."""

    def __init__(self) -> None:
        self.reset()
        self.open = 0
        # Set once every confirmed subscriber has lost its connection: nothing more will come.
        self.all_closed = asyncio.Event()
        self.first_close_at: float | None = None
        self.last_close_at: float | None = None

    def opened(self) -> None:
        self.open += 1
        self.all_closed.clear()

    def closed(self) -> None:
        self.open -= 1
        self.closed_since_reset += 1
        now = time.time()
        self.first_close_at = self.first_close_at or now
        self.last_close_at = now
        if self.open <= 0:
            self.all_closed.set()

    def reset(self) -> None:
        """Start a measurement: counts and latencies from here on."""
        self.events = 0
        self.unparsed = 0
        self.latency = Histogram()
        self.timeline = Timeline()
        self.target: int | None = None
        self.reached = asyncio.Event()
        self.closed_since_reset = 0
        # Control messages and close codes by name, and the first few errors.
        self.controls: Counter[str] = Counter()
        self.errors: list[str] = []

    def event(self, sent: float | None, now: float) -> None:
        self.events += 1
        if sent is None:
            self.unparsed += 1
        else:
            latency = now - sent
            self.latency.record(latency)
            self.timeline.record(sent, latency)
        if self.target is not None and self.events >= self.target:
            self.reached.set()

    def control(self, name: str) -> None:
        self.controls[name] += 1

    def error(self, text: str) -> None:
        self.controls["error"] += 1
        if len(self.errors) < 20:
            self.errors.append(text[:300])

    def expect(self, total: int) -> None:
        self.target = total
        if self.events >= total:
            self.reached.set()

    def report(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "unparsed": self.unparsed,
            "latency": self.latency.to_json(),
            "timeline": self.timeline.to_json(),
            "controls": dict(self.controls),
            "errors": self.errors,
            "open": self.open,
            "first_close_at": self.first_close_at,
            "last_close_at": self.last_close_at,
        }
