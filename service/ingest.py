"""The publish side as clients see it: who may publish how much, and Idempotency-Key honoured
whichever instance wrote first."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable

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
from .tracing import Tracing
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
        tracing: Tracing | None = None,
    ) -> None:
        self._publisher = publisher
        self._tracing = tracing or Tracing()
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

    def knock(self, principal: Principal | None, address: str) -> None:
        """Before anything is read of a publish: the address's rate (one unit for the
        request, refused or not) and whether it may publish at all (401 without a token)."""
        self._address_rate.take(address)
        self._access.check_publisher(principal)

    def admit(
        self, principal: Principal | None, address: str, topic: str, keys: Iterable[str | None]
    ) -> None:
        """May this client publish events of these keys now? Raises 401, 403 or 429 if not;
        each event counts against the rate limits (the first one was taken by ``knock``)."""
        keys = list(keys)
        self._access.check_publish(principal, topic, keys)
        if len(keys) > 1:
            self._address_rate.take(address, len(keys) - 1)
        if principal is not None:
            self._token_rate.take(principal.subject, len(keys))

    async def publish(
        self,
        topic: str,
        events: list[EventIn],
        publisher: Principal | None,
        address: str,
        idempotency_key: str | None = None,
        transport: str = "http",
        traceparent: str | None = None,
    ) -> tuple[list[Published], bool]:
        """Kafka's positions for ``events``, and whether they were written before (a replay).

        A topic that does not exist yet is created if the publisher may create it. The
        publish is traced (continuing ``traceparent``) when tracing is on.
        """

        def may_create() -> None:
            self._access.check_create(publisher, address, topic)

        scope = publisher.subject if publisher is not None else f"address {address}"
        try:
            with self._tracing.publish(topic, len(events), transport, traceparent) as headers:
                published, replayed = await self._publish(
                    topic,
                    events,
                    idempotency_key and _scoped(scope, idempotency_key),
                    may_create,
                    headers,
                )
        except KafkaUnavailable:
            self._metrics.publish_failures.inc()
            raise
        if not replayed:
            self._metrics.published.inc(len(published))
        return published, replayed

    async def _publish(
        self,
        topic: str,
        events: list[EventIn],
        idempotency_key: str | None,
        may_create: Callable[[], None],
        trace_headers: list[tuple[str, bytes]],
    ) -> tuple[list[Published], bool]:
        publisher = self._publisher
        if idempotency_key is None:
            return await publisher.publish(topic, events, None, may_create, trace_headers), False
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
            published = await publisher.publish(topic, events, tags, may_create, trace_headers)
            for tag, item in zip(tags, published, strict=True):
                index.answered(tag, item.partition, item.offset, item.key)
            return published, False
        finally:
            del self._running[name]
            done.set()


def _scoped(publisher: str, key: str) -> str:
    """An idempotency key as one publisher's own: two publishers (token subjects, or
    addresses) that happen to send the same key never answer each other's publishes. The
    publisher is hashed: a subject has no business in every Kafka record's headers."""
    digest = hashlib.blake2b(publisher.encode(), digest_size=8).hexdigest()
    return f"{digest}:{key}"


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
