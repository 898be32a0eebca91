"""service/fan_out.py: one fan-out, written a slice of subscribers at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from service import fan_out as fan_out_module
from service.broadcaster import Broadcaster
from service.events import EventRun, Scope
from service.fan_out import FanOut
from service.outbox import Outbox
from service.subscription import Subscription
from service.wire import Format

from .test_broadcaster import TOPIC, record


def subscriptions(count: int, capacity: int = 10) -> list[Subscription]:
    return [
        Subscription(TOPIC, None, Outbox(Format.JSON, capacity), cursor="") for _ in range(count)
    ]


def run_of(count: int) -> EventRun:
    broadcaster = Broadcaster(TOPIC, 100)
    broadcaster.assign(0, 0)
    events = [broadcaster.take_record(record({"n": n}, None, 0, n)) for n in range(count)]
    return EventRun([event for event in events if event is not None], Scope.TOPIC)


def test_each_step_writes_to_at_most_its_budget_of_subscribers_across_groups() -> None:
    first, second = subscriptions(3), subscriptions(4)
    fan_out = FanOut([(first, run_of(1)), (second, run_of(2))], lambda s: None, 0.0)
    assert not fan_out.step(budget=2)
    assert [s.outbox.pending for s in first + second] == [1, 1, 0, 0, 0, 0, 0]
    assert not fan_out.step(budget=2)  # the last of the first group, the first of the next
    assert [s.outbox.pending for s in first + second] == [1, 1, 1, 2, 0, 0, 0]
    assert fan_out.step(budget=3)
    assert [s.outbox.pending for s in second] == [2, 2, 2, 2]


def test_finish_writes_to_everyone_left() -> None:
    group = subscriptions(5)
    fan_out = FanOut([(group, run_of(1))], lambda s: None, 0.0)
    assert not fan_out.step(budget=1)
    fan_out.finish()
    assert all(s.outbox.pending == 1 for s in group)


def test_a_subscriber_whose_queue_overflows_is_handed_to_lagging() -> None:
    full, fine = subscriptions(1, capacity=1)[0], subscriptions(1, capacity=10)[0]
    cut: list[Subscription] = []
    FanOut([([full, fine], run_of(2))], cut.append, 0.0).finish()
    assert cut == [full]
    assert fine.outbox.pending == 2


def test_spent_counts_only_the_time_inside_its_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([10.0, 10.5, 20.0, 20.25])
    monkeypatch.setattr(fan_out_module, "perf_counter", lambda: next(clock))
    fan_out = FanOut([(subscriptions(2), run_of(1))], lambda s: None, 0.0)
    fan_out.step(budget=1)
    fan_out.step(budget=1)
    assert fan_out.spent == 0.75


def test_its_span_opens_with_it_and_closes_once_when_the_last_subscriber_is_written() -> None:
    seen: list[str] = []

    @contextmanager
    def span() -> Iterator[None]:
        seen.append("open")
        yield
        seen.append("closed")

    fan_out = FanOut([(subscriptions(3), run_of(1))], lambda s: None, 0.0, span())
    assert seen == ["open"]
    fan_out.step(budget=2)
    assert seen == ["open"]
    fan_out.step(budget=2)
    fan_out.finish()
    assert seen == ["open", "closed"]
