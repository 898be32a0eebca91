"""The read side: which topics a reader may see, their broadcasters, and where a subscription
starts (live, from the ring, or caught up from Kafka)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .access import Access
from .auth import Principal
from .broadcaster import Broadcaster, Broadcasters
from .consume import Feed
from .errors import KafkaUnavailable, UnknownTopic
from .outbox import Outbox
from .resume import Page, Resumer, Start
from .subscription import Subscription
from .topics import TopicPolicy

# How long a reader waits for a starting instance to reach the live head before a 503.
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


@dataclass(frozen=True, slots=True)
class Reads:
    """Opens subscriptions and reads pages for clients allowed to read."""

    _policy: TopicPolicy
    _access: Access
    _broadcasters: Broadcasters
    _feed: Feed
    _resumer: Resumer

    def is_private(self, topic: str) -> bool:
        """Whether reading ``topic`` needs a token (its answers are then never cached)."""
        return not self._access.is_public(topic)

    async def readable(
        self, topic: str, key: str | None, principal: Principal | None
    ) -> Broadcaster:
        """The broadcaster of a topic this client may read: 404, 401 or 403 otherwise; 503
        while this instance is not yet positioned on Kafka."""
        if not self._policy.exposed(topic):
            raise UnknownTopic(f"topic {topic!r} is not exposed")
        self._access.check_subscribe(principal, topic, key)
        positioned = self._feed.positioned
        if not positioned.is_set():
            try:
                async with asyncio.timeout(_POSITIONED_WAIT_S):
                    await positioned.wait()
            except TimeoutError:
                raise KafkaUnavailable("not yet positioned on Kafka") from None
        return self._broadcasters.get(topic)

    async def open(
        self,
        outbox: Outbox,
        topic: str,
        key: str | None,
        since: str | None,
        principal: Principal | None,
        address: str,
        latest: bool = False,
    ) -> Opened:
        """Subscribe ``outbox`` to ``topic`` (and ``key``), from ``since`` or the live head;
        ``latest`` asks for mode=latest (only the newest waiting event per key)."""
        broadcaster = await self.readable(topic, key, principal)
        if since is None:
            return Opened(broadcaster.subscribe(outbox, key, latest=latest), recovered=True)
        try:
            start = await self._resumer.start(broadcaster, key, since)
        except BaseException:
            self.done(topic)
            raise
        reset_to = None if start.recovered else start.cursor.encode(topic)
        # No await between the check and the subscription: the ring cannot move in between.
        # A replay bigger than the queue takes at once is caught up paced instead.
        if broadcaster.covers(start.cursor, key) and not broadcaster.backlog(
            start.cursor, key, outbox.catch_up_room
        ):
            subscription = broadcaster.subscribe(outbox, key, start.cursor, latest=latest)
            return Opened(subscription, start.recovered, reset_to)
        subscription = Subscription(
            topic, key, outbox, cursor=start.cursor.encode(topic), latest=latest
        )
        catch_up = self._resumer.catch_up(broadcaster, subscription, start.cursor, address)
        return Opened(subscription, start.recovered, reset_to, catch_up)

    async def page(
        self, broadcaster: Broadcaster, key: str | None, after: str, limit: int, address: str
    ) -> tuple[Start, Page]:
        """Where ``after`` starts, and up to ``limit`` events from there."""
        start = await self._resumer.start(broadcaster, key, after)
        page = await self._resumer.page(broadcaster, key, start.cursor, limit, address)
        return start, page

    def close(self, subscription: Subscription) -> None:
        self._broadcasters.get(subscription.topic).unsubscribe(subscription)
        self._broadcasters.release(subscription.topic)

    def done(self, topic: str) -> None:
        """A request that read ``topic`` (a page, a snapshot) is answered: keep no state for
        a topic Kafka does not have."""
        self._broadcasters.release(topic)
