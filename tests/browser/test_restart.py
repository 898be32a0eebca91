"""The server restarts under the demo page while events keep coming: once it is back, the
page shows every event exactly once, in order, whatever transport carried it."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from playwright.async_api import Page

from ..processes import HeraldProcess
from ..serving import StartServer
from .conftest import TOPICS
from .demo_page import DemoPage, texts


class Publisher:
    """Publishes numbered events on one key (one partition: one order) until stopped."""

    def __init__(self, server: HeraldProcess, topic: str) -> None:
        self.server = server
        self.topic = topic
        self.sent: list[str] = []
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=30) as client:
            while not self._stopping.is_set():
                await self.send(client, f"event {len(self.sent) + 1}")
                # A steady stream rather than a burst; not a wait for anything.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.02)

    async def send(self, client: httpx.AsyncClient, text: str) -> None:
        body = {"key": "k", "data": {"text": text}}
        response = await client.post(f"/v1/topics/{self.topic}/events", json=body)
        assert response.status_code == 201, response.text
        self.sent.append(text)

    async def stop(self, task: asyncio.Task[None]) -> None:
        self._stopping.set()
        await task


@pytest.fixture(scope="module")
async def restartable(module_server_factory: StartServer) -> HeraldProcess:
    """A server of its own, since it is stopped and started again on the same port."""
    return await module_server_factory(topics=TOPICS)


@pytest.mark.parametrize("transport", ["websocket", "sse", "longpoll"])
async def test_restart_mid_stream_shows_every_event_once_in_order(
    page: Page,
    restartable: HeraldProcess,
    demo_server: HeraldProcess,
    feed_topic: str,
    user: str,
    transport: str,
) -> None:
    demo = await DemoPage(page, restartable, feed_topic, user).open(transports=(transport,))
    await demo.wait_open(transport)
    # Events go in through another instance, so they keep coming while this one is down.
    publisher = Publisher(demo_server, feed_topic)
    task = asyncio.create_task(publisher.run())
    try:
        await demo.wait_feed(10)
        await asyncio.to_thread(restartable.stop)
        await demo.wait_not_open()
        restartable.start()
        await restartable.wait_ready()
        await demo.wait_open(transport)
        # Events published after the page came back reach it too.
        await demo.wait_feed(len(publisher.sent) + 10)
    finally:
        await publisher.stop(task)
    async with httpx.AsyncClient(base_url=demo_server.base_url, timeout=30) as client:
        await publisher.send(client, "the end")
    # Anything shown twice would arrive before "the end", which is last on its partition.
    await page.wait_for_function("() => heraldDemo.feed.at(-1)?.text === 'the end'", timeout=30_000)
    shown = await demo.feed()
    assert texts(shown) == publisher.sent
    assert len({event["id"] for event in shown}) == len(shown)
    assert await page.evaluate("() => heraldDemo.duplicates") == 0
