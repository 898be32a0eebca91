"""Publishing as clients see it: Idempotency-Key honoured here, whichever instance wrote first."""

from __future__ import annotations

import asyncio

from .broadcaster import Broadcasters
from .errors import Invalid
from .events import EventIn
from .idempotency import Batch, tags_for
from .publish import Published, Publisher


class Ingest:
    """Publishes batches; a batch under a known idempotency key is answered, not written."""

    def __init__(self, publisher: Publisher, broadcasters: Broadcasters) -> None:
        self._publisher = publisher
        self._broadcasters = broadcasters
        # Publishes under way here, so a retry that overtakes its original waits for it.
        self._running: dict[tuple[str, str], asyncio.Event] = {}

    async def publish(
        self, topic: str, events: list[EventIn], idempotency_key: str | None = None
    ) -> tuple[list[Published], bool]:
        """Kafka's positions for ``events``, and whether they were written before (a replay)."""
        if idempotency_key is None:
            return await self._publisher.publish(topic, events), False
        tags = tags_for(idempotency_key, [(e.type, e.key, e.data) for e in events])
        index = self._broadcasters.get(topic).idempotency
        name = (topic, idempotency_key)
        while (running := self._running.get(name)) is not None:
            await running.wait()
        batch = index.lookup(idempotency_key)
        if batch is not None:
            return _replay(topic, batch, tags[0].digest), True
        self._running[name] = done = asyncio.Event()
        try:
            published = await self._publisher.publish(topic, events, tags)
            for tag, item in zip(tags, published, strict=True):
                index.answered(tag, item.partition, item.offset, item.key)
            return published, False
        finally:
            del self._running[name]
            done.set()


def _replay(topic: str, batch: Batch, digest: str) -> list[Published]:
    if batch.digest != digest:
        raise Invalid(
            "this Idempotency-Key was used for a different body",
            [{"path": "", "message": "Idempotency-Key reused with another body"}],
        )
    return [
        Published(topic, written.event_key, written.partition, written.offset)
        for _, written in sorted(batch.parts.items())
    ]
