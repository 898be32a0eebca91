"""service/streams.py: streaming connections counted, and told to go when the instance stops."""

from __future__ import annotations

import pytest

from service.errors import RateLimited, ServiceBusy
from service.outbox import Outbox
from service.streams import Streams
from service.wire import Format


def test_connections_are_capped_per_address_and_in_all() -> None:
    limits = Streams(max_per_address=2, max_connections=3)
    limits.acquire("a")
    limits.acquire("a")
    with pytest.raises(RateLimited):
        limits.acquire("a")
    limits.acquire("b")
    with pytest.raises(ServiceBusy):
        limits.acquire("c")
    limits.release("a")
    limits.acquire("c")
    assert limits.count == 3


def test_closing_tells_every_open_outbox_and_any_that_opens_later() -> None:
    streams = Streams(max_per_address=10, max_connections=10)
    early, late = Outbox(Format.JSON, 10), Outbox(Format.SSE, 10)
    streams.add(early)
    streams.close_all()
    assert early.closed and streams.closing
    streams.add(late)
    assert late.closed


def test_lag_notices_reach_connections_that_take_them_and_new_ones_at_once() -> None:
    streams = Streams(max_per_address=10, max_connections=10)
    told, silent = Outbox(Format.JSON, 10), Outbox(Format.JSON, 10)
    streams.add(told, lambda behind_s: f"lag {behind_s}")
    streams.add(silent)  # a long-poll: nothing to tell it with
    streams.tell_lag(7.5)
    assert told.drain() == ["lag 7.5"] and silent.drain() == []
    late = Outbox(Format.JSON, 10)
    streams.add(late, lambda behind_s: f"lag {behind_s}")
    assert late.drain() == ["lag 7.5"]
    streams.tell_lag(0.0)
    assert told.drain() == ["lag 0.0"] and late.drain() == ["lag 0.0"]
    streams.discard(told)
    streams.tell_lag(6.0)
    assert told.drain() == []
    streams.add(Outbox(Format.JSON, 10), lambda behind_s: f"lag {behind_s}")
