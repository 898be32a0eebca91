"""What /metrics says about live deliveries: their latency per transport, and the
subscriptions that receive them."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import connect

from ..clients import publish, sse, ws_recv_op
from ..scrape import Scrape, scrape
from ..serving import InProcess, StartServer
from .test_history import get_page

LATENCY_COUNT = "herald_delivery_latency_seconds_count"


async def until(server: InProcess, holds: Any) -> Scrape:
    """The first scrape for which ``holds(scrape)`` is true."""
    async with asyncio.timeout(10):
        while True:
            metrics = await scrape(server.base_url)
            if holds(metrics):
                return metrics
            await asyncio.sleep(0.01)


async def test_every_live_delivery_counts_its_latency_on_its_transport(
    function_server_factory: StartServer, topic: str
) -> None:
    server = await function_server_factory()
    assert isinstance(server, InProcess)
    async with (
        connect(f"{server.ws_url}/v1/ws?topic={topic}&key=k") as ws,
        sse(server.base_url, f"/v1/topics/{topic}/stream?key=k") as stream,
    ):
        await ws_recv_op(ws, "subscribed")
        metrics = await scrape(server.base_url)
        assert metrics.total("herald_subscriptions", transport="ws") == 1
        assert metrics.total("herald_subscriptions", transport="sse") == 1

        await publish(server.base_url, topic, [{"key": "k", "data": n} for n in range(3)])
        assert [(await ws_recv_op(ws, "event"))["data"] for _ in range(3)] == [0, 1, 2]
        assert [(await stream.next_event()).json()["data"] for _ in range(3)] == [0, 1, 2]
        head = (await get_page(server, topic, key="k"))["next"]
        poll = asyncio.create_task(get_page(server, topic, key="k", after=head, wait=20))
        await until(server, lambda m: m.total("herald_long_polls_waiting") == 1)
        await publish(server.base_url, topic, {"key": "k", "data": 3})
        assert [event["data"] for event in (await poll)["events"]] == [3]

        metrics = await until(
            server,
            lambda m: (
                m.total(LATENCY_COUNT, transport="ws") == 4
                and m.total(LATENCY_COUNT, transport="sse") == 4
            ),
        )
        assert metrics.total(LATENCY_COUNT, transport="poll") == 1
        # In memory, Kafka takes no time: every delivery is in the first buckets.
        for transport in ("ws", "sse", "poll"):
            within_a_second = metrics.total(
                "herald_delivery_latency_seconds_bucket", transport=transport, le="1.0"
            )
            assert within_a_second == metrics.total(LATENCY_COUNT, transport=transport)
        # A resume's replay is not live: it does not count.
    async with connect(f"{server.ws_url}/v1/ws?topic={topic}&key=k&since={head}") as again:
        assert (await ws_recv_op(again, "event"))["data"] == 3
        metrics = await scrape(server.base_url)
        assert metrics.total(LATENCY_COUNT, transport="ws") == 4
    await until(
        server,
        lambda m: (
            m.total("herald_subscriptions", transport="ws") == 0
            and m.total("herald_subscriptions", transport="sse") == 0
        ),
    )
