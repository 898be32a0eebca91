"""GET /v1/topics/{topic}/events: pages after a cursor, from the ring or Kafka, and long-poll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ..clients import publish
from ..serving import InProcess, StartServer


@pytest.fixture(scope="module")
async def small_ring(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    """Ring of 5: most pages must be read from Kafka."""
    yield await module_server_factory(topics="it-.*", ring_size="5")


async def get_page(server: InProcess, topic: str, **params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        response = await client.get(f"/v1/topics/{topic}/events", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def all_pages(server: InProcess, topic: str, **params: Any) -> list[list[int]]:
    """Follow ``next`` until a page comes back empty; the data of every page."""
    pages: list[list[int]] = []
    after = params.pop("after", "earliest")
    while True:
        page = await get_page(server, topic, after=after, **params)
        if not page["events"]:
            return pages
        pages.append([event["data"] for event in page["events"]])
        after = page["next"]


@pytest.fixture(params=["ring of 5", "default ring"])
def paged_server(
    request: pytest.FixtureRequest, small_ring: InProcess, server: InProcess
) -> InProcess:
    return small_ring if request.param == "ring of 5" else server


async def test_keyed_pages_cover_the_history_exactly_once(
    paged_server: InProcess, topic: str
) -> None:
    server = paged_server
    await publish(server.base_url, topic, [{"data": n, "key": "k"} for n in range(25)])
    await publish(server.base_url, topic, [{"data": -1, "key": "other"}])
    pages = await all_pages_after_consumed(server, topic, 25, key="k", limit=10)
    assert pages == [list(range(10)), list(range(10, 20)), list(range(20, 25))]


async def all_pages_after_consumed(
    server: InProcess, topic: str, count: int, **params: Any
) -> list[list[int]]:
    """Pages once this instance has consumed ``count`` events (awaited via a long-poll)."""
    seen = 0
    after = "earliest"
    while seen < count:
        page = await get_page(server, topic, after=after, wait=10, **params)
        seen += len(page["events"])
        after = page["next"]
    return await all_pages(server, topic, **params)


async def test_whole_topic_pages_hold_every_event_once(small_ring: InProcess, topic: str) -> None:
    await publish(small_ring.base_url, topic, [{"data": n} for n in range(40)])
    pages = await all_pages_after_consumed(small_ring, topic, 40, limit=7)
    flat = [n for page in pages for n in page]
    assert sorted(flat) == list(range(40))
    assert all(len(page) == 7 for page in pages[:-1])


async def test_long_poll_returns_when_the_first_event_exists(server: InProcess, topic: str) -> None:
    await publish(server.base_url, topic, {"data": "old", "key": "k"})
    [tail] = await all_pages_after_consumed(server, topic, 1, key="k")
    assert tail == ["old"]
    head = (await get_page(server, topic, key="k"))["next"]
    waiting = asyncio.create_task(get_page(server, topic, key="k", after=head, wait=20))
    await publish(server.base_url, topic, {"data": "new", "key": "k"})
    page = await waiting
    assert [event["data"] for event in page["events"]] == ["new"]
    assert page["next"] == page["events"][0]["id"]


async def test_long_poll_with_nothing_new_returns_an_empty_page(
    server: InProcess, topic: str
) -> None:
    page = await get_page(server, topic, wait=1)
    assert page["events"] == []


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "wait=61", "wait=-1", "after=%%%"])
async def test_bad_history_parameters_are_400(server: InProcess, query: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get(f"/v1/topics/it-x/events?{query}")
    assert response.status_code == 400


async def get_response(server: InProcess, topic: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        response = await client.get(f"/v1/topics/{topic}/events", params=params)
    assert response.status_code == 200, response.text
    return response


async def test_a_full_page_after_a_cursor_is_immutable_and_not_tagged_live(
    server: InProcess, topic: str
) -> None:
    await publish(server.base_url, topic, [{"data": n, "key": "k"} for n in range(5)])
    await all_pages_after_consumed(server, topic, 5, key="k")
    first = (await get_page(server, topic, key="k", limit=1))["next"]
    response = await get_response(server, topic, key="k", after=first, limit=3)
    assert [event["data"] for event in response.json()["events"]] == [1, 2, 3]
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["surrogate-key"].split(" ") == [
        f"herald/{topic}",
        f"herald/{topic}/key/k",
    ]
    assert response.headers["cache-tag"] == f"herald/{topic},herald/{topic}/key/k"


async def test_a_page_that_reaches_the_head_is_kept_briefly_and_tagged_live(
    server: InProcess, topic: str
) -> None:
    await publish(server.base_url, topic, [{"data": n} for n in range(3)])
    await all_pages_after_consumed(server, topic, 3)
    first = (await get_page(server, topic, limit=1))["next"]
    response = await get_response(server, topic, after=first, limit=10)
    assert len(response.json()["events"]) == 2
    assert response.headers["cache-control"] == "public, max-age=1"
    assert f"herald/{topic}/live" in response.headers["surrogate-key"].split(" ")


async def test_a_full_page_from_earliest_is_not_immutable(server: InProcess, topic: str) -> None:
    # "earliest" moves as retention deletes records: the same URL may name other events.
    await publish(server.base_url, topic, [{"data": n} for n in range(3)])
    await all_pages_after_consumed(server, topic, 3)
    response = await get_response(server, topic, after="earliest", limit=2)
    assert len(response.json()["events"]) == 2
    assert response.headers["cache-control"] == "public, max-age=1"


async def test_a_long_poll_answer_is_a_page_a_cache_may_share_briefly(
    server: InProcess, topic: str
) -> None:
    head = (await get_page(server, topic))["next"]
    waiting = asyncio.create_task(get_response(server, topic, after=head, wait=20))
    await publish(server.base_url, topic, {"data": "new"})
    response = await waiting
    assert [event["data"] for event in response.json()["events"]] == ["new"]
    assert response.headers["cache-control"] == "public, max-age=1"
    timed_out = await get_response(server, topic, after=response.json()["next"], wait=1)
    assert timed_out.json()["events"] == []
    # Even the empty answer may be shared: waiting requests for its URL stay collapsed.
    assert timed_out.headers["cache-control"] == "public, max-age=1"


async def test_errors_are_never_stored(server: InProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        unexposed = await client.get("/v1/topics/not-exposed/events")
        bad = await client.get("/v1/topics/it-x/events?limit=0")
        health = await client.get("/healthz")
    assert (unexposed.status_code, bad.status_code) == (404, 400)
    for response in (unexposed, bad, health):
        assert response.headers["cache-control"] == "no-store"
