"""Through Varnish, fronting Herald the way a CDN does: what it keeps, collapses and passes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from websockets.asyncio.client import connect

from ..clients import publish, sse, ws_recv_op, ws_send
from ..processes import HeraldProcess, Varnish
from ..serving import StartServer
from ..tokens import token
from .conftest import (
    HISTORY,
    POLL_S,
    SNAPSHOT,
    origin_answers,
    origin_settings,
    purges,
    until,
    waiting_long_polls,
)


async def consumed(server: HeraldProcess, topic: str, count: int, **params: str) -> str:
    """Wait until the origin's own consumer holds ``count`` events (its snapshot shows them:
    a history page may read Kafka before the consumer got there); the head cursor."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=40) as client:

        async def held() -> bool:
            answer = await client.get(f"/v1/topics/{topic}/snapshot", params=params)
            return len(answer.json()["events"]) >= count

        await until(held)
        snapshot = await client.get(f"/v1/topics/{topic}/snapshot", params=params)
    cursor: str = snapshot.json()["cursor"]
    return cursor


async def test_a_snapshot_is_a_hit_until_max_age_then_revalidated_with_a_304(
    origin: HeraldProcess, varnish: Varnish, topic: str
) -> None:
    await publish(origin.base_url, topic, {"data": "a"})
    await consumed(origin, topic, 1)
    url = f"/v1/topics/{topic}/snapshot"
    fetched = await origin_answers(origin, SNAPSHOT, 200)
    revalidated = await origin_answers(origin, SNAPSHOT, 304)
    async with httpx.AsyncClient(base_url=varnish.base_url) as client:
        first = await client.get(url)
        hits = [await client.get(url) for _ in range(5)]
        assert first.headers["x-cache"] == "MISS"
        assert all(hit.headers["x-cache"] == "HIT" for hit in hits)
        assert all(hit.json() == first.json() for hit in hits)
        assert "surrogate-key" not in first.headers  # for the cache, not for browsers
        # The origin's request id is that of the request that fetched the answer: a hit,
        # answering another request, carries none.
        assert len(first.headers["x-request-id"]) == 16
        assert all("x-request-id" not in hit.headers for hit in hits)

        async def revalidated_by_the_origin() -> bool:
            # Past max-age (1 s) the cache asks with If-None-Match, and keeps serving.
            again = await client.get(url)
            assert again.status_code == 200 and again.json() == first.json()
            return await origin_answers(origin, SNAPSHOT, 304) > revalidated

        await until(revalidated_by_the_origin)
    # One full answer from the origin; after that only "304 Not Modified".
    assert await origin_answers(origin, SNAPSHOT, 200) - fetched == 1


async def test_an_immutable_history_page_is_fetched_from_the_origin_once(
    origin: HeraldProcess, varnish: Varnish, topic: str
) -> None:
    await publish(origin.base_url, topic, [{"data": n, "key": "k"} for n in range(5)])
    await consumed(origin, topic, 5, key="k")
    async with httpx.AsyncClient(base_url=origin.base_url) as client:
        first = (await client.get(f"/v1/topics/{topic}/events?key=k&limit=1")).json()["next"]
    before = await origin_answers(origin, HISTORY)
    url = f"/v1/topics/{topic}/events?key=k&after={first}&limit=3"
    async with httpx.AsyncClient(base_url=varnish.base_url) as client:
        pages = await asyncio.gather(*(client.get(url) for _ in range(20)))
        pages.append(await client.get(url))
    assert all([e["data"] for e in page.json()["events"]] == [1, 2, 3] for page in pages)
    assert pages[-1].headers["cache-control"] == "public, max-age=31536000, immutable"
    assert await origin_answers(origin, HISTORY) - before == 1


async def test_200_waiting_long_polls_make_one_origin_request_and_all_get_the_event(
    origin: HeraldProcess, varnish: Varnish, topic: str
) -> None:
    await publish(origin.base_url, topic, {"data": "old"})
    head = await consumed(origin, topic, 1)
    before = await origin_answers(origin, HISTORY)
    sleeping = varnish.counter("MAIN.busy_sleep")
    url = f"/v1/topics/{topic}/events?after={head}&wait=30"
    limits = httpx.Limits(max_connections=250)
    async with httpx.AsyncClient(base_url=varnish.base_url, timeout=60, limits=limits) as client:
        waiting = [asyncio.create_task(client.get(url)) for _ in range(200)]
        # One request waits at the origin; the cache holds the other 199 behind it.
        while (
            await waiting_long_polls(origin) < 1
            or varnish.counter("MAIN.busy_sleep") - sleeping < 199
        ):
            assert not any(task.done() for task in waiting)
            await asyncio.sleep(POLL_S)
        await publish(origin.base_url, topic, {"data": "new"})
        answers = await asyncio.gather(*waiting)
    assert all(answer.status_code == 200 for answer in answers)
    assert all([e["data"] for e in answer.json()["events"]] == ["new"] for answer in answers)
    assert await origin_answers(origin, HISTORY) - before == 1


async def test_server_sent_events_stream_through_unbuffered(
    origin: HeraldProcess, varnish: Varnish, topic: str
) -> None:
    async with (
        sse(varnish.base_url, f"/v1/topics/{topic}/stream") as first,
        sse(varnish.base_url, f"/v1/topics/{topic}/stream") as second,
    ):
        assert first.response.headers["x-cache"] == "PASS"
        for n in range(3):
            await publish(origin.base_url, topic, {"data": n})
            # Each event arrives while the stream stays open: nothing holds it back.
            assert (await first.next_event()).json()["data"] == n
            assert (await second.next_event()).json()["data"] == n


async def test_websocket_upgrades_pass_through(
    origin: HeraldProcess, varnish: Varnish, topic: str
) -> None:
    async with connect(f"{varnish.ws_url}/v1/ws", subprotocols=["herald.v1.json"]) as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic})
        await ws_recv_op(ws, "subscribed")
        await publish(origin.base_url, topic, {"data": "through"})
        assert (await ws_recv_op(ws, "event"))["data"] == "through"


async def test_a_private_topic_is_never_served_from_the_cache_without_a_token(
    origin: HeraldProcess, varnish: Varnish
) -> None:
    topic = "cdn-priv-notes"
    writer = token("backend", publish=[f"{topic}/*"])
    reader = token("alice", subscribe=[f"{topic}/{{sub}}"])
    await publish(
        origin.base_url,
        topic,
        {"key": "alice", "data": "secret"},
        headers={"Authorization": f"Bearer {writer}"},
    )
    await consumed(origin, topic, 1, key="alice", access_token=reader)
    path = f"/v1/topics/{topic}/snapshot?key=alice"
    async with httpx.AsyncClient(base_url=varnish.base_url) as client:
        bearer = await client.get(path, headers={"Authorization": f"Bearer {reader}"})
        in_url = [await client.get(f"{path}&access_token={reader}") for _ in range(2)]
        anonymous = [await client.get(path) for _ in range(2)]
    for answer in (bearer, *in_url):
        assert answer.status_code == 200 and answer.json()["events"][0]["data"] == "secret"
        assert answer.headers["x-cache"] != "HIT"
    assert [answer.status_code for answer in anonymous] == [401, 401]
    assert all("secret" not in answer.text for answer in anonymous)


async def test_purge_on_publish_refreshes_a_long_lived_snapshot_at_once(
    function_server_factory: StartServer, tmp_path_factory: Any, topic: str
) -> None:
    cache = Varnish(tmp_path_factory.mktemp("varnish-purge"))
    # An hour of max-age: only a purge can make the cache fetch the snapshot again soon.
    origin = await function_server_factory(
        **origin_settings(snapshot_max_age_s="3600", purge_url=cache.base_url)
    )
    cache.up([origin])
    try:
        await publish(origin.base_url, topic, [{"data": n, "key": "k"} for n in range(4)])
        await consumed(origin, topic, 4)
        async with httpx.AsyncClient(base_url=origin.base_url) as client:
            first = (await client.get(f"/v1/topics/{topic}/events?key=k&limit=1")).json()
        settled_url = f"/v1/topics/{topic}/events?key=k&after={first['next']}&limit=2"
        snapshot_url = f"/v1/topics/{topic}/snapshot"
        async with httpx.AsyncClient(base_url=cache.base_url) as client:
            old = await client.get(snapshot_url)
            assert (await client.get(snapshot_url)).headers["x-cache"] == "HIT"
            assert (await client.get(settled_url)).headers["x-cache"] == "MISS"
            await publish(origin.base_url, topic, {"data": "fresh", "key": "k"})

            async def fresh_at_the_edge() -> bool:
                latest = (await client.get(snapshot_url)).json()["events"][-1]
                return bool(latest["data"] == "fresh")

            await until(fresh_at_the_edge)
            settled = await client.get(settled_url)
        assert old.json()["events"][-1]["data"] == 3
        assert await purges(origin) >= 1
        # The purge names the topic's live answers only: settled pages stay cached.
        assert settled.headers["x-cache"] == "HIT"
    finally:
        cache.down()
