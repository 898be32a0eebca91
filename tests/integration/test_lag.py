"""An instance whose consumer falls behind a real broker tells its clients, its metrics and
(when asked to) its readiness so; and says "live" again once it caught up."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from websockets.asyncio.client import connect

from ..clients import SseStream, publish, sse, ws_recv_op
from ..held_kafka import behind_kafka
from ..scrape import scrape


async def next_sse(stream: SseStream, event: str) -> Any:
    while True:
        message = await stream.next_event()
        if message.event == event:
            return message.json()


async def readiness(base_url: str, ready: bool) -> dict[str, Any]:
    """/readyz once it says ``ready`` (or not)."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        while True:
            response = await client.get("/readyz")
            if (response.status_code == 200) == ready:
                body: dict[str, Any] = response.json()
                return body
            await asyncio.sleep(0.05)


async def test_clients_hear_that_their_instance_lags_and_then_that_it_is_live(
    kafka_bootstrap: str, topic: str
) -> None:
    async with (
        behind_kafka(kafka_bootstrap, topics="it-.*") as (kafka, server),
        connect(f"{server.ws_url}/v1/ws?topic={topic}") as ws,
        sse(server.base_url, f"/v1/topics/{topic}/stream") as stream,
    ):
        await ws_recv_op(ws, "subscribed")
        await publish(server.base_url, topic, [{"data": 0}])
        assert (await ws_recv_op(ws, "event"))["data"] == 0
        assert (await next_sse(stream, "message"))["data"] == 0
        assert (await readiness(server.base_url, True))["checks"]["caught up"] is True

        kafka.reading.clear()
        await kafka.held.wait()
        await publish(server.base_url, topic, [{"data": n} for n in range(1, 6)])
        async with asyncio.timeout(20):
            told = await ws_recv_op(ws, "lag")
            assert told["live"] is False and told["behind_s"] >= 1
            sse_told = await next_sse(stream, "lag")
            assert sse_told["live"] is False and sse_told["behind_s"] >= 1
            unready = await readiness(server.base_url, False)
        assert unready["checks"]["caught up"] is False
        assert "behind Kafka" in unready["reason"]
        metrics = await scrape(server.base_url)
        assert metrics.total("herald_consumer_lag_records") == 5
        assert metrics.total("herald_partition_lag_records", topic=topic) == 5
        assert metrics.total("herald_consumer_lag_seconds") >= 1
        assert metrics.total("herald_lag_notice") == 1

        kafka.reading.set()
        async with asyncio.timeout(20):
            # Nothing was lost meanwhile: the events come, in order, then "live".
            assert [(await ws_recv_op(ws, "event"))["data"] for _ in range(5)] == [1, 2, 3, 4, 5]
            assert await ws_recv_op(ws, "lag") == {"op": "lag", "behind_s": 0, "live": True}
            assert [(await next_sse(stream, "message"))["data"] for _ in range(5)] == [
                1,
                2,
                3,
                4,
                5,
            ]
            assert await next_sse(stream, "lag") == {"behind_s": 0, "live": True}
            await readiness(server.base_url, True)
        metrics = await scrape(server.base_url)
        assert metrics.total("herald_consumer_lag_records") == 0
        assert metrics.total("herald_lag_notice") == 0
