"""Helpers shared by the fault tests: awaiting conditions on what the clients record."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.cursor import Cursor


class Progress:
    """Bumped by publishers and subscribers; the test awaits conditions on what they record."""

    def __init__(self) -> None:
        self._changed = asyncio.Condition()

    async def bump(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def until(self, predicate: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def quietly(self, predicate: Callable[[], bool], within: float) -> bool:
        """Await ``predicate``; on timeout carry on, so the assertions report what is missing."""
        with contextlib.suppress(TimeoutError):
            await self.until(predicate, within)
        return predicate()


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The next offset of each partition of ``topic``: how many records Kafka holds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


class CursorSteps:
    """Checks that a whole-topic subscriber's ids advance: each a step past the one before.

    From one event's id to the next, no partition's offset may go down and at least one must
    go up; normally exactly one goes up by exactly one (``jumps`` counts the other steps:
    records that are legitimately not delivered, such as a second copy of an idempotent
    publish, make them).
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.last: dict[int, int] | None = None
        self.regressions = 0
        self.samples: list[str] = []  # the first few regressions, for the report
        self.stalls = 0
        self.jumps = 0

    def add(self, event_id: str) -> None:
        current = Cursor.decode(self.topic, event_id).as_dict()
        previous, self.last = self.last, current
        if previous is None:
            return
        steps = {p: current.get(p, 0) - previous.get(p, 0) for p in previous.keys() | current}
        if any(step < 0 for step in steps.values()):
            self.regressions += 1
            if len(self.samples) < 3:
                self.samples.append(f"{previous} -> {current}")
        ups = [step for step in steps.values() if step > 0]
        if not ups:
            self.stalls += 1
        elif len(ups) > 1 or ups[0] > 1:
            self.jumps += 1

    def summary(self) -> str:
        return (
            f"cursor regressions {self.regressions} {self.samples}, "
            f"stalls {self.stalls}, jumps {self.jumps}"
        )
