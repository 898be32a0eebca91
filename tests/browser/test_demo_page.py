"""The demo page in Chromium over WebSocket: a snapshot handed over to the live stream, the
publish form, the keyed notifications view, and screenshots for people to look at."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Page, expect

from ..clients import publish
from ..held_kafka import behind_kafka
from ..processes import HeraldProcess
from .conftest import SCREENSHOTS
from .demo_page import DemoPage, texts
from .test_transports import publish_texts


async def test_snapshot_then_live_events_over_websocket(
    page: Page, demo_server: HeraldProcess, feed_topic: str, user: str
) -> None:
    await publish_texts(demo_server, feed_topic, "before-1", "before-2")
    demo = await DemoPage(page, demo_server, feed_topic, user).open()
    await demo.wait_open("websocket")
    assert texts(await demo.wait_feed(2)) == ["before-1", "before-2"]

    await publish_texts(demo_server, feed_topic, "live-1", "live-2", "live-3")
    await demo.wait_feed(5)
    await page.fill("#publish-text", "from the page")
    await page.click("#publish button")
    # Acknowledged, then recognised when it came back (in either order).
    await expect(page.locator("#publish-status")).to_contain_text("delivered ✓✓")
    shown = await demo.wait_feed(6)
    assert texts(shown) == ["before-1", "before-2", "live-1", "live-2", "live-3", "from the page"]
    assert len({event["id"] for event in shown}) == 6
    await expect(page.locator("#feed-count")).to_have_text("6 events")
    await expect(page.locator("#feed-duplicates")).to_have_text("0 duplicates")
    await expect(page.locator("#feed li")).to_have_count(6)


async def test_notifications_show_only_the_users_own(
    page: Page, demo_server: HeraldProcess, feed_topic: str, user: str
) -> None:
    demo = await DemoPage(page, demo_server, feed_topic, user).open()
    await demo.wait_open("websocket")
    mine = await publish(
        demo_server.base_url,
        "notifications",
        [
            {"key": user, "type": "notification", "data": {"text": "first"}},
            {"key": f"{user}-other", "type": "notification", "data": {"text": "not yours"}},
            {"key": user, "type": "notification", "data": {"text": "second"}},
        ],
    )
    await page.fill("#notify-text", "third")
    await page.click("#notify button")
    shown = await demo.wait_notifications(3)
    assert texts(shown) == ["first", "second", "third"]
    # A keyed subscription's ids are the ids the publish answered with.
    assert [event["id"] for event in shown[:2]] == [mine[0]["id"], mine[2]["id"]]
    assert {event["key"] for event in shown} == {user}


async def test_screenshots_desktop_and_phone(
    browser: Browser, page: Page, demo_server: HeraldProcess, feed_topic: str, user: str
) -> None:
    """Saved under results/browser/; on a phone-sized screen nothing scrolls sideways."""
    await publish_texts(demo_server, feed_topic, *(f"headline {n}" for n in range(1, 6)))
    await publish(
        demo_server.base_url,
        "notifications",
        {"key": user, "type": "notification", "data": {"text": "Ada mentioned you"}},
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    demo = await DemoPage(page, demo_server, feed_topic, user).open()
    await demo.wait_open("websocket")
    await demo.wait_feed(5)
    await page.screenshot(path=SCREENSHOTS / "demo-desktop.png", full_page=True)

    phone = await browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    try:
        small = DemoPage(await phone.new_page(), demo_server, feed_topic, user)
        await small.open()
        await small.wait_open("websocket")
        await small.wait_feed(5)
        await small.wait_notifications(1)
        await small.page.screenshot(path=SCREENSHOTS / "demo-phone.png", full_page=True)
        overflow = await small.page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, "the page scrolls sideways on a phone"
        await expect(small.page.locator("#connection")).to_be_in_viewport()
    finally:
        await phone.close()


async def test_the_page_says_when_its_server_reads_kafka_late_and_when_it_is_live(
    page: Page, kafka_bootstrap: str, feed_topic: str, user: str
) -> None:
    async with behind_kafka(kafka_bootstrap) as (kafka, server):
        demo = await DemoPage(page, server, feed_topic, user).open()  # type: ignore[arg-type]
        await demo.wait_open("websocket")
        lag = page.locator("#connection-lag")
        await expect(lag).to_have_text("live")
        await publish_texts(server, feed_topic, "first")
        await demo.wait_feed(1)

        kafka.reading.clear()
        await kafka.held.wait()
        await publish_texts(server, feed_topic, "late-1", "late-2")
        await expect(lag).to_have_text(re.compile(r"catching up \(\d+ s behind\)"), timeout=20_000)
        assert await page.evaluate("() => heraldDemo.client.behind") >= 1

        kafka.reading.set()
        assert texts(await demo.wait_feed(3)) == ["first", "late-1", "late-2"]
        await expect(lag).to_have_text("live", timeout=20_000)
