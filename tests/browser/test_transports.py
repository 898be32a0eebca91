"""The demo page in Chromium: live events over WebSocket, and over SSE or long-polling when
the transports before them are blocked, each event shown once and in order."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from playwright.async_api import BrowserContext, Page, WebSocketRoute

from ..clients import publish
from ..processes import HeraldProcess
from .demo_page import DemoPage, texts


async def publish_texts(server: HeraldProcess, topic: str, *words: str) -> None:
    """One key, so the events share a partition and their order is defined."""
    for word in words:
        await publish(server.base_url, topic, {"key": "k", "data": {"text": word}})


async def refuse_websockets(context: BrowserContext) -> list[str]:
    """Every WebSocket is closed before a message passes, as a proxy stripping upgrades."""
    attempts: list[str] = []

    async def refuse(ws: WebSocketRoute) -> None:
        attempts.append(ws.url)
        await ws.close(code=1011, reason="blocked by the test")

    await context.route_web_socket("**/v1/ws*", refuse)
    return attempts


async def test_sse_when_websocket_is_blocked(
    context: BrowserContext, page: Page, demo_server: HeraldProcess, feed_topic: str, user: str
) -> None:
    attempts = await refuse_websockets(context)
    demo = await DemoPage(page, demo_server, feed_topic, user).open()
    await demo.wait_open("sse")
    assert attempts, "the client tried a WebSocket first"
    await publish_texts(demo_server, feed_topic, "one", "two", "three")
    assert texts(await demo.wait_feed(3)) == ["one", "two", "three"]


async def test_long_polling_when_websocket_and_sse_are_blocked(
    context: BrowserContext, page: Page, demo_server: HeraldProcess, feed_topic: str, user: str
) -> None:
    await refuse_websockets(context)
    streams: list[str] = []

    async def abort(route: object) -> None:
        streams.append(route.request.url)  # type: ignore[attr-defined]
        await route.abort()  # type: ignore[attr-defined]

    await context.route("**/stream*", abort)
    polls: list[str] = []
    page.on(
        "request", lambda request: polls.append(request.url) if "/events?" in request.url else None
    )
    demo = await DemoPage(page, demo_server, feed_topic, user).open()
    await demo.wait_open("longpoll")
    assert streams, "the client tried Server-Sent Events before long-polling"
    await publish_texts(demo_server, feed_topic, "one", "two", "three")
    assert texts(await demo.wait_feed(3)) == ["one", "two", "three"]
    # No cache-busting: a position has one URL, so a CDN can answer its waiters at once.
    for url in polls:
        names = [name for name, _ in parse_qsl(urlsplit(url).query)]
        names = names[1:] if names[0] == "key" else names
        assert names in (["after", "limit"], ["after", "limit", "wait"]), url
    assert any(url.endswith("&wait=25") for url in polls)


async def test_a_page_without_websocket_gets_every_event_over_sse_and_throws_nothing(
    context: BrowserContext, page: Page, demo_server: HeraldProcess, feed_topic: str, user: str
) -> None:
    # Some pages (or their embedders) remove the WebSocket global altogether.
    await context.add_init_script("delete window.WebSocket;")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    demo = await DemoPage(page, demo_server, feed_topic, user).open()
    await demo.wait_open("sse")
    await publish_unkeyed(demo_server, feed_topic, "one", "two", "three")
    assert texts(await demo.wait_feed(3)) == ["one", "two", "three"]
    assert errors == []


async def test_unkeyed_events_arrive_in_the_order_they_were_published(
    page: Page, demo_server: HeraldProcess, feed_topic: str, user: str
) -> None:
    demo = await DemoPage(page, demo_server, feed_topic, user).open()
    await demo.wait_open("websocket")
    words = [f"w{n}" for n in range(30)]
    await publish_unkeyed(demo_server, feed_topic, *words)
    assert texts(await demo.wait_feed(len(words))) == words


async def test_an_event_published_from_the_page_is_marked_delivered_when_it_comes_back(
    page: Page, demo_server: HeraldProcess, feed_topic: str, user: str
) -> None:
    demo = await DemoPage(page, demo_server, feed_topic, user).open()
    await demo.wait_open("websocket")
    await page.fill("#publish-text", "mine")
    await page.click("#publish button")
    await page.wait_for_function(
        "() => heraldDemo.published.length === 1 && heraldDemo.published[0].delivered"
    )
    assert await page.locator("#feed li[data-own=delivered] .data").inner_text() == "mine"
    assert "delivered" in await page.locator("#publish-status").inner_text()


async def publish_unkeyed(server: HeraldProcess, topic: str, *words: str) -> None:
    """One POST each, one after the other: the order a topic's reader must see."""
    for word in words:
        await publish(server.base_url, topic, {"data": {"text": word}})
