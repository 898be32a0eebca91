"""The demo page in real Chromium over HTTP/3: the page, its SSE stream and its snapshot come
over QUIC (resource timing says ``h3``), and every event arrives once, in order.

Chromium is started for this test's origin only: QUIC forced on for it, and the test's own
self-signed certificate trusted by its public key; its WebSocket removed (no browser speaks
WebSocket over HTTP/3), so the page streams over Server-Sent Events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser

from ..processes import QuicHerald, quic_herald, serving
from .conftest import CHROMIUM_ARGS, TOPICS, chromium
from .demo_page import DemoPage, texts


@pytest.fixture(scope="module")
async def origin(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[QuicHerald]:
    herald = quic_herald(kafka_bootstrap, tmp_path_factory.mktemp("http3-browser"), topics=TOPICS)
    async with serving(herald.process):
        yield herald


@pytest.fixture(scope="module")
async def quic_browser(origin: QuicHerald) -> AsyncIterator[Browser]:
    args = [arg for arg in CHROMIUM_ARGS if arg != "--disable-quic"] + [
        "--enable-quic",
        f"--origin-to-force-quic-on=127.0.0.1:{origin.process.port}",
        f"--ignore-certificate-errors-spki-list={origin.certificates.server_spki}",
    ]
    async with chromium(args) as launched:
        yield launched


async def test_the_demo_page_gets_every_event_over_sse_on_http3(
    quic_browser: Browser, origin: QuicHerald, feed_topic: str, user: str
) -> None:
    context = await quic_browser.new_context()
    try:
        await context.add_init_script("delete window.WebSocket;")
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # A stream still open has no resource timing entry yet: what Chromium's network
        # layer says of each response as its headers arrive covers it.
        answered: list[tuple[str, str]] = []
        cdp = await context.new_cdp_session(page)
        cdp.on(
            "Network.responseReceived",
            lambda event: answered.append(
                (urlsplit(event["response"]["url"]).path, event["response"].get("protocol", ""))
            ),
        )
        await cdp.send("Network.enable")
        demo = await DemoPage(page, origin.process, feed_topic, user).open()
        await demo.wait_open("sse")
        words = [f"w{n}" for n in range(10)]
        async with httpx.AsyncClient(verify=origin.process.verify) as client:
            for word in words:  # over TCP, as a backend publishes
                answer = await client.post(
                    f"{origin.process.base_url}/v1/topics/{feed_topic}/events",
                    json={"key": "k", "data": {"text": word}},
                )
                assert answer.status_code == 201, answer.text
        assert texts(await demo.wait_feed(len(words))) == words
        protocols = await page.evaluate(
            """() => [performance.getEntriesByType('navigation')[0],
                      ...performance.getEntriesByType('resource')]
                     .map(entry => [new URL(entry.name).pathname, entry.nextHopProtocol])"""
        )
        assert errors == []
    finally:
        await context.close()
    # The page itself, its scripts and its snapshots (their resource timing), and its live
    # stream: all over HTTP/3.
    assert {"/", "/client/herald.js", f"/v1/topics/{feed_topic}/snapshot"} <= {
        path for path, _ in protocols
    }
    assert all(protocol == "h3" for _, protocol in protocols), protocols
    streams = [protocol for path, protocol in answered if path.endswith("/stream")]
    assert streams and all(protocol == "h3" for protocol in streams), answered
