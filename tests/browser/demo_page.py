"""The demo page as the browser tests see it: what it shows, and waiting for it to show it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from playwright.async_api import Page, expect

from ..processes import HeraldProcess
from .conftest import FAST_BACKOFF

# Long enough for a Herald restart (its readiness includes positioning on Kafka).
PATIENCE_MS = 30_000


class DemoPage:
    """One open demo page: a feed of ``topic`` and ``user``'s notifications."""

    def __init__(self, page: Page, server: HeraldProcess, topic: str, user: str) -> None:
        self.page = page
        self.server = server
        self.topic = topic
        self.user = user

    async def open(self, transports: tuple[str, ...] = ()) -> DemoPage:
        query = [("topic", self.topic), ("user", self.user), ("backoff", FAST_BACKOFF)]
        query += [("transports", name) for name in transports]
        await self.page.goto(f"{self.server.base_url}/?{urlencode(query)}")
        return self

    async def wait_open(self, transport: str) -> None:
        """The page says it is connected, and over which transport."""
        connection = self.page.locator("#connection")
        await expect(connection).to_have_attribute("data-state", "open", timeout=PATIENCE_MS)
        await expect(connection).to_have_attribute("data-transport", transport)

    async def wait_not_open(self) -> None:
        await self.page.wait_for_function(
            "() => heraldDemo.client.state !== 'open'", timeout=PATIENCE_MS
        )

    async def feed(self) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = await self.page.evaluate("() => heraldDemo.feed")
        return shown

    async def notifications(self) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = await self.page.evaluate("() => heraldDemo.notifications")
        return shown

    async def wait_feed(self, count: int) -> list[dict[str, Any]]:
        """Wait until the feed shows at least ``count`` events; return what it shows."""
        await self.page.wait_for_function(
            "n => heraldDemo.feed.length >= n", arg=count, timeout=PATIENCE_MS
        )
        return await self.feed()

    async def wait_notifications(self, count: int) -> list[dict[str, Any]]:
        await self.page.wait_for_function(
            "n => heraldDemo.notifications.length >= n", arg=count, timeout=PATIENCE_MS
        )
        return await self.notifications()


def texts(shown: list[dict[str, Any]]) -> list[str]:
    return [str(event["text"]) for event in shown]
