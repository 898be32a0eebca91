"""Rates that keep one client from hurting the others (connection counts: streams.py)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from .errors import RateLimited

# Buckets of clients not seen for a while are forgotten first beyond this many.
_MAX_BUCKETS = 100_000


@dataclass(slots=True)
class TokenBucket:
    """One allowance: ``rate`` per second, bursts of ``burst`` (one connection holds one)."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    updated: float = field(init=False, default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, amount: float = 1.0) -> None:
        """Spend ``amount``; raise RateLimited (with Retry-After) when the bucket is short."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if amount > self.tokens:
            wait = (amount - self.tokens) / self.rate if self.rate > 0 else 60.0
            raise RateLimited(
                f"rate limit: {self.rate:g} per second, bursts of {self.burst:g}",
                retry_after=max(1, math.ceil(wait)),
            )
        self.tokens -= amount


class RateLimiter:
    """Token buckets per name (an address, a token's subject): ``rate`` per second, ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, name: str, amount: float = 1.0) -> None:
        """Spend ``amount`` from ``name``'s bucket (see TokenBucket.take)."""
        bucket = self._buckets.pop(name, None) or TokenBucket(self._rate, self._burst)
        self._buckets[name] = bucket
        while len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)
        bucket.take(amount)
