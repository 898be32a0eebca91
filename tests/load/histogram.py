"""Latency histograms with 1 % wide logarithmic buckets: cheap to fill, exact to merge.

Generators record millions of latencies; they send a histogram (a sparse mapping of bucket
to count, plus the exact maximum) rather than the samples, and the runner merges them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Bucket i holds latencies in [exp(i / SCALE), exp((i + 1) / SCALE)) microseconds.
SCALE = 100.0
_LOG_SCALE = SCALE
_MIN_US = 1.0


@dataclass
class Histogram:
    """Latencies in seconds, recorded into logarithmic microsecond buckets."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    min_s: float = math.inf

    def record(self, latency_s: float) -> None:
        us = latency_s * 1e6
        index = int(math.log(us) * _LOG_SCALE) if us > _MIN_US else 0
        buckets = self.buckets
        buckets[index] = buckets.get(index, 0) + 1
        self.count += 1
        self.total_s += latency_s
        if latency_s > self.max_s:
            self.max_s = latency_s
        if latency_s < self.min_s:
            self.min_s = latency_s

    def merge(self, other: Histogram) -> None:
        for index, count in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + count
        self.count += other.count
        self.total_s += other.total_s
        self.max_s = max(self.max_s, other.max_s)
        self.min_s = min(self.min_s, other.min_s)

    def percentile(self, p: float) -> float:
        """The latency (seconds) below which ``p`` percent of the samples lie; 0 when empty."""
        if not self.count:
            return 0.0
        if p >= 100.0:
            return self.max_s
        rank = p / 100.0 * self.count
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                # The bucket's geometric middle, never beyond the exact extremes.
                middle = math.exp((index + 0.5) / SCALE) / 1e6 if index else _MIN_US / 1e6
                return min(max(middle, self.min_s), self.max_s)
        return self.max_s

    @property
    def mean_s(self) -> float:
        return self.total_s / self.count if self.count else 0.0

    def cumulative(self) -> list[tuple[float, float]]:
        """(latency seconds, fraction of samples at or below it) per bucket, for plots."""
        points: list[tuple[float, float]] = []
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            upper = math.exp((index + 1) / SCALE) / 1e6
            points.append((min(upper, self.max_s), seen / self.count))
        return points

    def summary_ms(self) -> dict[str, float]:
        return {
            "count": self.count,
            "p50_ms": self.percentile(50) * 1e3,
            "p90_ms": self.percentile(90) * 1e3,
            "p99_ms": self.percentile(99) * 1e3,
            "p999_ms": self.percentile(99.9) * 1e3,
            "max_ms": self.max_s * 1e3,
            "mean_ms": self.mean_s * 1e3,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "count": self.count,
            "total_s": self.total_s,
            "max_s": self.max_s,
            "min_s": self.min_s if self.count else 0.0,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Histogram:
        histogram = cls(
            buckets={int(k): int(v) for k, v in raw["buckets"].items()},
            count=int(raw["count"]),
            total_s=float(raw["total_s"]),
            max_s=float(raw["max_s"]),
        )
        histogram.min_s = float(raw["min_s"]) if histogram.count else math.inf
        return histogram

    @classmethod
    def merged(cls, histograms: Iterable[Histogram]) -> Histogram:
        total = cls()
        for histogram in histograms:
            total.merge(histogram)
        return total


@dataclass
class Timeline:
    """Latency by send time in quarter seconds: count, sum and maximum, for the plot."""

    slots: dict[int, list[float]] = field(default_factory=dict)

    def record(self, sent_s: float, latency_s: float) -> None:
        slot = int(sent_s * 4)
        entry = self.slots.get(slot)
        if entry is None:
            self.slots[slot] = [1, latency_s, latency_s]
        else:
            entry[0] += 1
            entry[1] += latency_s
            if latency_s > entry[2]:
                entry[2] = latency_s

    def merge(self, other: Timeline) -> None:
        for slot, (count, total, top) in other.slots.items():
            entry = self.slots.get(slot)
            if entry is None:
                self.slots[slot] = [count, total, top]
            else:
                entry[0] += count
                entry[1] += total
                entry[2] = max(entry[2], top)

    def series(self) -> list[tuple[float, float, float]]:
        """(seconds since the first slot, mean latency, max latency) per slot."""
        if not self.slots:
            return []
        first = min(self.slots)
        return [
            ((slot - first) / 4, total / count, top)
            for slot, (count, total, top) in sorted(self.slots.items())
        ]

    def to_json(self) -> dict[str, list[float]]:
        return {str(slot): entry for slot, entry in self.slots.items()}

    @classmethod
    def from_json(cls, raw: dict[str, list[float]]) -> Timeline:
        return cls(slots={int(slot): list(entry) for slot, entry in raw.items()})
