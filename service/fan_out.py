"""One fan-out of a topic's events to its subscribers, written a slice of them at a time."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from time import perf_counter

from .events import EventRun
from .subscription import Subscription

# Subscribers written per turn of the event loop. A write to a socket costs some 10 µs, so a
# slice holds the loop for about a millisecond: Kafka's replies, publishes and the other
# topics' fan-outs go on between slices instead of waiting for the last of 10 000 sockets.
SLICE = 64


class FanOut:
    """Events of one topic, taken together, on their way to the subscribers that were there
    when it began (each with its run: the whole topic's, or its key's)."""

    __slots__ = ("_at", "_group", "_groups", "_lagging", "_span", "spent", "started")

    def __init__(
        self,
        groups: list[tuple[list[Subscription], EventRun]],
        lagging: Callable[[Subscription], None],
        started: float,
        span: AbstractContextManager[None] | None = None,
    ) -> None:
        self._groups = groups
        self._group = 0
        self._at = 0
        # Called with each subscriber whose queue overflowed: it is cut loose.
        self._lagging = lagging
        self._span = span
        # Loop time at the start: how long a fan-out of the topic takes paces the next.
        self.started = started
        # Seconds spent writing it, its slices together (not the loop's other work between).
        self.spent = 0.0
        if span is not None:
            span.__enter__()

    def step(self, budget: int = SLICE) -> bool:
        """Write to the next ``budget`` subscribers; True once every one has its events."""
        began = perf_counter()
        try:
            return self._step(budget)
        finally:
            self.spent += perf_counter() - began

    def _step(self, budget: int) -> bool:
        groups = self._groups
        lagging = self._lagging
        while self._group < len(groups):
            subscriptions, run = groups[self._group]
            end = min(len(subscriptions), self._at + budget)
            for subscription in subscriptions[self._at : end]:
                skip_below = subscription.skip_below
                own = run.after(skip_below) if skip_below else run
                if own is not None and not subscription.outbox.put_run(subscription, own):
                    lagging(subscription)
            budget -= end - self._at
            if end < len(subscriptions):
                self._at = end
                return False
            self._group += 1
            self._at = 0
            if budget <= 0 and self._group < len(groups):
                return False
        if self._span is not None:
            self._span.__exit__(None, None, None)
            self._span = None
        return True

    def finish(self) -> None:
        """Write to every subscriber still waiting for this fan-out, now."""
        self.step(budget=1 << 62)
