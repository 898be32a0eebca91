"""The parts of one running Herald, shared by the transports through the app."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from quart import current_app

from .access import Access
from .auth import Principal
from .broadcaster import Broadcaster, Broadcasters
from .browser_security import Origins
from .config import Settings
from .consume import Feed
from .errors import KafkaUnavailable, UnknownTopic
from .events import EventIn
from .ingest import Ingest
from .limits import ConnectionLimits, RateLimiter
from .metrics import Metrics
from .outbox import Outbox, Subscription
from .publish import Publisher
from .resume import Resumer
from .topics import TopicPolicy
from .validation import EventValidator

_POSITIONED_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class Opened:
    """A new subscription and how its start point was honoured."""

    subscription: Subscription
    recovered: bool
    # Set when the requested cursor is no longer retained: where delivery starts instead.
    reset_to: str | None = None
    # Set when the start lies before the ring: the transport runs it (in a task it owns)
    # to read the gap from Kafka; it hands the subscription to the live stream at the end.
    catch_up: Coroutine[Any, Any, None] | None = None


@dataclass(eq=False)
class Herald:
    """Settings, Kafka clients, broadcasters and the live connections of this process."""

    settings: Settings
    policy: TopicPolicy
    broadcasters: Broadcasters
    publisher: Publisher
    ingest: Ingest
    access: Access
    origins: Origins
    address_rate: RateLimiter
    token_rate: RateLimiter
    connections: ConnectionLimits
    feed: Feed
    metrics: Metrics
    validator: EventValidator
    resumer: Resumer
    outboxes: set[Outbox] = field(default_factory=set)
    shutting_down: bool = False

    async def readable(
        self, topic: str, key: str | None, principal: Principal | None
    ) -> Broadcaster:
        """The broadcaster of a topic this client may read: 404, 401 or 403 otherwise."""
        if not self.policy.exposed(topic):
            raise UnknownTopic(f"topic {topic!r} is not exposed")
        self.access.check_subscribe(principal, topic, key)
        return await self.broadcaster(topic)

    async def broadcaster(self, topic: str) -> Broadcaster:
        """The topic's broadcaster once the consumer is positioned; 404 when not exposed."""
        if not self.policy.exposed(topic):
            raise UnknownTopic(f"topic {topic!r} is not exposed")
        if not self.feed.positioned.is_set():
            try:
                await asyncio.wait_for(self.feed.positioned.wait(), _POSITIONED_WAIT_S)
            except TimeoutError:
                raise KafkaUnavailable("not yet positioned on Kafka", retry_after=2) from None
        return self.broadcasters.get(topic)

    async def open(
        self,
        outbox: Outbox,
        topic: str,
        key: str | None,
        since: str | None,
        principal: Principal | None,
    ) -> Opened:
        """Subscribe ``outbox`` to ``topic`` (and ``key``), from ``since`` or the live head."""
        broadcaster = await self.readable(topic, key, principal)
        if since is None:
            return Opened(broadcaster.subscribe(outbox, key), recovered=True)
        start = await self.resumer.start(broadcaster, key, since)
        reset_to = None if start.recovered else start.cursor.encode(topic)
        # No await between the check and the subscription: the ring cannot move in between.
        if broadcaster.covers(start.cursor, key):
            subscription = broadcaster.subscribe(outbox, key, start.cursor)
            return Opened(subscription, start.recovered, reset_to)
        subscription = Subscription(topic, key, outbox, cursor=start.cursor.encode(topic))
        catch_up = self.resumer.catch_up(broadcaster, subscription, start.cursor)
        return Opened(subscription, start.recovered, reset_to, catch_up)

    def admit_publish(
        self, principal: Principal | None, address: str, topic: str, events: list[EventIn]
    ) -> None:
        """May this client publish these events now? Raises 401, 403 or 429 if not."""
        self.access.check_publish(principal, topic, (event.key for event in events))
        self.address_rate.take(address, len(events))
        if principal is not None:
            self.token_rate.take(principal.subject, len(events))

    def close(self, subscription: Subscription) -> None:
        self.broadcasters.get(subscription.topic).unsubscribe(subscription)

    def begin_shutdown(self) -> None:
        """Tell every streaming connection to say goodbye so clients reconnect elsewhere."""
        self.shutting_down = True
        for outbox in list(self.outboxes):
            outbox.close()


def herald() -> Herald:
    return cast(Herald, current_app.extensions["herald"])
