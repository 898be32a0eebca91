"""Purge on publish: tell the CDN that a topic's live answers changed, coalesced per topic.

Snapshots may then carry a long max-age and still refresh as soon as an event arrives. At most
one purge per topic per interval bounds the purge rate whatever the event rate; the first
event after a quiet interval is purged at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit, urlunsplit

import httpx

from . import tasks
from .cache_policy import live_tag
from .config import Settings
from .metrics import Metrics

log = logging.getLogger(__name__)

_TIMEOUT_S = 5.0
# Purges in flight at once: a burst of topics must not open a connection each.
_CONCURRENT = 8


class Purger:
    """Collects topics that changed and purges each by its live surrogate key."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._metrics = metrics
        self._changed: set[str] = set()
        # When each recently purged topic was purged (loop time): one purge per interval.
        self._purged_at: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._in_flight = asyncio.Semaphore(_CONCURRENT)
        # The purge URL as logs may show it: no credentials, no query.
        self._where = _shown(settings.purge_url)
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._settings.purge_url)

    def changed(self, topic: str) -> None:
        """``topic`` received events: its live answers are stale from now on."""
        if self.enabled:
            self._changed.add(topic)
            self._wake.set()

    async def start(self) -> None:
        if self.enabled and self._task is None:
            self._client = httpx.AsyncClient(timeout=_TIMEOUT_S, transport=self._transport)
            self._task = asyncio.create_task(self._run(), name="cdn purge")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._settings.purge_interval_s
        while True:
            now = loop.time()
            # A topic purged less than an interval ago waits for its turn; others go now.
            self._purged_at = {t: at for t, at in self._purged_at.items() if at + interval > now}
            due = {topic for topic in self._changed if topic not in self._purged_at}
            if due:
                self._changed -= due
                self._purged_at.update(dict.fromkeys(due, now))
                await asyncio.gather(*(self._purge(topic) for topic in sorted(due)))
                continue
            self._wake.clear()
            waits = [self._purged_at[topic] + interval - now for topic in self._changed]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(waits) if waits else None):
                    await self._wake.wait()

    async def _purge(self, topic: str) -> None:
        async with self._in_flight:
            await self._send_purge(topic)

    async def _send_purge(self, topic: str) -> None:
        assert self._client is not None
        try:
            response = await self._client.request(
                self._settings.purge_method,
                self._settings.purge_url,
                headers={"Surrogate-Key": live_tag(topic)},
            )
        except httpx.HTTPError as exc:
            # The CDN keeps serving until max-age: stale for a while, never wrong.
            log.warning("purge of %s at %s failed: %s", topic, self._where, type(exc).__name__)
            self._metrics.purges.labels("failed").inc()
            return
        if response.is_success:
            self._metrics.purges.labels("ok").inc()
        else:
            log.warning("purge of %s refused: %d", topic, response.status_code)
            self._metrics.purges.labels("refused").inc()


def _shown(url: str) -> str:
    """``url`` without what may be secret in it (user info, query, fragment)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))
