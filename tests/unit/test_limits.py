"""service/limits.py: token buckets and connection counts."""

from __future__ import annotations

import pytest

from service.errors import RateLimited
from service.limits import RateLimiter, TokenBucket


def test_a_bucket_allows_its_burst_then_refuses_with_retry_after() -> None:
    limiter = RateLimiter(rate=1.0, burst=5)
    limiter.take("a", 5)
    with pytest.raises(RateLimited) as refused:
        limiter.take("a", 3)
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    limiter.take("b", 5)  # another client has its own bucket


def test_a_batch_larger_than_the_burst_is_always_refused() -> None:
    with pytest.raises(RateLimited):
        RateLimiter(rate=1000.0, burst=10).take("a", 11)


def test_a_connections_own_bucket_refuses_past_its_burst_and_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    bucket.take(3)
    with pytest.raises(RateLimited) as refused:
        bucket.take()
    assert refused.value.retry_after == 1
    bucket.updated -= 1.0  # a second later: two more
    bucket.take(2)
    with pytest.raises(RateLimited):
        bucket.take()
