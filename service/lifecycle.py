"""Starting and stopping one Herald: its Kafka clients, and its streams' goodbyes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .access import Access
from .config import Settings
from .consume import Feed
from .history import History
from .publish import Publisher
from .purge import Purger
from .streams import Streams

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Starts the Kafka clients before serving and stops them after; says when it is ready."""

    _settings: Settings
    _access: Access
    _publisher: Publisher
    _feed: Feed
    _history: History
    _purger: Purger
    _streams: Streams

    async def start(self) -> None:
        log.info("%s", self._access.policy())
        if self._settings.publish_open:
            log.warning(
                "HERALD_PUBLISH_OPEN is set: ANYONE who can reach this server may publish to "
                "(and create) every exposed topic. Use it for local development only."
            )
        jwks = self._access.verifier.jwks
        if jwks is not None:
            await jwks.start()
        await self._publisher.start()
        await self._purger.start()
        await self._feed.start()

    def begin_shutdown(self) -> None:
        """Tell every streaming connection to say goodbye so clients reconnect elsewhere."""
        self._streams.close_all()

    async def stop(self) -> None:
        self.begin_shutdown()
        jwks = self._access.verifier.jwks
        steps: tuple[tuple[str, Callable[[], Awaitable[None]]], ...] = (
            *((("JWKS refresh", jwks.stop),) if jwks is not None else ()),
            ("consumer", self._feed.stop),
            ("purger", self._purger.stop),
            ("history reader", self._history.stop),
            ("producer", self._publisher.stop),
        )
        grace = self._settings.shutdown_grace_s
        for name, stop in steps:
            # A Kafka client that does not stop must not keep the process from exiting
            # (a supervisor waits for it): each gets the grace time, then is left behind.
            try:
                async with asyncio.timeout(grace):
                    await stop()
            except TimeoutError:
                log.warning("shutdown: the %s did not stop within %ss", name, grace)
        log.info("stopped")

    async def wait_ready(self) -> None:
        """Until this instance is positioned at Kafka's live head (for embedding and tests)."""
        await self._feed.positioned.wait()

    def unready_reason(self) -> str | None:
        """Why Kafka cannot be reached, while it cannot, or how far behind it this instance
        reads (for /readyz)."""
        lag = self._feed.lag
        if self._feed.problem is None and lag.unready:
            return f"the consumer is {lag.behind_s:.0f}s behind Kafka (HERALD_LAG_UNREADY_S)"
        return self._feed.problem

    def readiness(self) -> dict[str, bool]:
        """What a load balancer asks before sending clients here."""
        checks = {
            "kafka": self._feed.kafka_reachable,
            "consumer": self._feed.positioned.is_set(),
            "serving": not self._streams.closing,
        }
        if self._settings.lag_unready_s:
            # Far behind Kafka: clients would get old news here; new ones go elsewhere.
            checks["caught up"] = not self._feed.lag.unready
        jwks = self._access.verifier.jwks
        if jwks is not None:
            # Without its keys an instance would refuse every token: not ready for clients.
            checks["token keys"] = jwks.loaded
        return checks
