"""purge: coalesced purges by surrogate key, at most one per topic per round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from service.config import Settings
from service.metrics import Metrics
from service.purge import Purger

URL = "http://cdn.invalid/"


class RecordingCdn(httpx.AsyncBaseTransport):
    """Answers every purge with ``status`` and remembers its method and key."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.purged: list[tuple[str, str]] = []
        self.arrived = asyncio.Condition()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self.arrived:
            self.purged.append((request.method, request.headers["Surrogate-Key"]))
            self.arrived.notify_all()
        return httpx.Response(self.status)

    async def until(self, count: int) -> list[tuple[str, str]]:
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.purged) >= count)
            return list(self.purged)


@pytest.fixture
async def cdn() -> RecordingCdn:
    return RecordingCdn()


@pytest.fixture
async def purger(cdn: RecordingCdn) -> AsyncIterator[Purger]:
    purger = Purger(Settings(purge_url=URL, purge_interval_s=0.05), Metrics(), transport=cdn)
    await purger.start()
    yield purger
    await purger.stop()


async def test_many_events_of_a_topic_make_one_purge_of_its_live_key(
    purger: Purger, cdn: RecordingCdn
) -> None:
    for _ in range(50):
        purger.changed("orders")
    purger.changed("news")
    purged = await cdn.until(2)
    assert sorted(purged) == [("PURGE", "herald/news/live"), ("PURGE", "herald/orders/live")]


async def test_events_during_a_round_make_exactly_one_more_purge(
    purger: Purger, cdn: RecordingCdn
) -> None:
    purger.changed("orders")
    await cdn.until(1)
    for _ in range(20):
        purger.changed("orders")
    assert await cdn.until(2) == [("PURGE", "herald/orders/live")] * 2


async def test_without_a_purge_url_nothing_is_sent() -> None:
    cdn = RecordingCdn()
    purger = Purger(Settings(), Metrics(), transport=cdn)
    await purger.start()
    purger.changed("orders")
    await purger.stop()
    assert not purger.enabled and cdn.purged == []


async def test_a_refused_purge_is_counted_and_the_next_one_still_sent() -> None:
    cdn = RecordingCdn(status=403)
    metrics = Metrics()
    purger = Purger(Settings(purge_url=URL, purge_interval_s=0.01), metrics, transport=cdn)
    await purger.start()
    try:
        purger.changed("a")
        await cdn.until(1)
        purger.changed("b")
        await cdn.until(2)
    finally:
        await purger.stop()
    refused = metrics.registry.get_sample_value("herald_cache_purges_total", {"outcome": "refused"})
    assert refused == 2


async def test_a_topic_waiting_for_its_interval_does_not_hold_back_another() -> None:
    cdn = RecordingCdn()
    purger = Purger(Settings(purge_url=URL, purge_interval_s=3600), Metrics(), transport=cdn)
    await purger.start()
    try:
        purger.changed("busy")
        await cdn.until(1)
        purger.changed("busy")  # purged an interval (an hour) after the first at the earliest
        purger.changed("quiet")
        purged = await cdn.until(2)
    finally:
        await purger.stop()
    assert purged == [("PURGE", "herald/busy/live"), ("PURGE", "herald/quiet/live")]
