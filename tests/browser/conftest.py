"""Browser fixtures: Debian's Chromium driven by Playwright, and Herald servers for it.

Never `playwright install`: the tests use the system's /usr/bin/chromium (`make test-deps`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from ..processes import ROOT, HeraldProcess
from ..serving import StartServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots for people to look at; results/ is git-ignored.
SCREENSHOTS = ROOT / "results" / "browser"
# The demo's topics: a feed topic per test, and the shared notifications topic.
TOPICS = r"(notifications|br-[A-Za-z0-9._-]+)"
# Fast reconnects keep the tests short: the backoff starts at 100 ms and stops at 1 s.
FAST_BACKOFF = "100,1000"


@asynccontextmanager
async def chromium(args: list[str]) -> AsyncIterator[Browser]:
    """A headless Chromium with ``args``, with a fresh temporary profile, closed after."""
    assert os.access(CHROMIUM, os.X_OK), f"no {CHROMIUM}: `make test-deps` installs it"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=args
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the session."""
    async with chromium(CHROMIUM_ARGS) as launched:
        yield launched


@pytest.fixture(scope="session")
async def demo_server(server_factory: StartServer) -> HeraldProcess:
    """The Herald server the demo pages of most tests talk to."""
    return await server_factory(topics=TOPICS)


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser context per test (no shared cache or cookies), failing on page errors."""
    created = await browser.new_context(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    created.on("weberror", lambda error: errors.append(str(error.error)))
    try:
        yield created
    finally:
        await created.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


@pytest.fixture
def feed_topic() -> str:
    return f"br-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"
