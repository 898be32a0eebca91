"""The publish side as clients see it: who may publish how much, and Idempotency-Key honoured
whichever instance wrote first."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from .access import Access
from .auth import Principal
from .broadcaster import Broadcasters
from .config import Settings
from .errors import Invalid, KafkaUnavailable
from .events import EventIn
from .idempotency import Batch, tags_for
from .limits import RateLimiter
from .metrics import Metrics
from .publish import Published, Publisher
from .validation import EventValidator


class Ingest:
    """Admits and publishes batches; a batch under a known idempotency key is answered, not
    written."""

    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        broadcasters: Broadcasters,
        access: Access,
        metrics: Metrics,
    ) -> None:
        self._publisher = publisher
        self._broadcasters = broadcasters
        self._access = access
        self._metrics = metrics
        self.validator = EventValidator(settings.max_batch_events)
        self._address_rate = RateLimiter(
            settings.publish_rate_per_address, settings.publish_burst_per_address
        )
        self._token_rate = RateLimiter(
            settings.publish_rate_per_token, settings.publish_burst_per_token
        )
        # Publishes under way here, so a retry that overtakes its original waits for it.
        self._running: dict[tuple[str, str], asyncio.Event] = {}

    def admit(
        self, principal: Principal | None, address: str, topic: str, keys: Iterable[str | None]
    ) -> None:
        """May this client publish events of these keys now? Raises 401, 403 or 429 if not;
        each key counts as one event against the rate limits."""
        keys = list(keys)
        self._access.check_publish(principal, topic, keys)
        self._address_rate.take(address, len(keys))
        if principal is not None:
            self._token_rate.take(principal.subject, len(keys))

    async def publish(
        self, topic: str, events: list[EventIn], idempotency_key: str | None = None
    ) -> tuple[list[Published], bool]:
        """Kafka's positions for ``events``, and whether they were written before (a replay)."""
        try:
            published, replayed = await self._publish(topic, events, idempotency_key)
        except KafkaUnavailable:
            self._metrics.publish_failures.inc()
            raise
        if not replayed:
            self._metrics.published.inc(len(published))
        return published, replayed

    async def _publish(
        self, topic: str, events: list[EventIn], idempotency_key: str | None
    ) -> tuple[list[Published], bool]:
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
