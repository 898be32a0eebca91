"""Kafka stopped under a running Herald: 503 and not ready, then recovery without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from ..clients import publish, ws_recv_op, ws_send
from ..processes import HeraldProcess, KafkaBroker


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker only this test stops and starts, so the rest of the suite is unaffected."""
    broker = KafkaBroker(tmp_path / "kafka")
    broker.up()
    try:
        yield broker
    finally:
        broker.discard()


@pytest.fixture
def own_server(own_broker: KafkaBroker, tmp_path: Path) -> Iterator[HeraldProcess]:
    server = HeraldProcess(
        own_broker.bootstrap, tmp_path / "herald.log", topics="it-.*", publish_timeout_s="2"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_publish_is_503_while_kafka_is_down_and_recovers(
    own_broker: KafkaBroker, own_server: HeraldProcess, topic: str
) -> None:
    await own_server.wait_ready()
    # One key, so one partition: the offsets below tell what Kafka kept.
    await publish(own_server.base_url, topic, {"data": "before", "key": "k"})
    async with connect(f"{own_server.ws_url}/v1/ws") as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic})
        await ws_recv_op(ws, "subscribed")

        own_broker.down()
        async with httpx.AsyncClient(base_url=own_server.base_url, timeout=30) as client:
            refused = await client.post(
                f"/v1/topics/{topic}/events", json={"data": "during", "key": "k"}
            )
        assert refused.status_code == 503, refused.text
        assert refused.json()["type"] == "urn:herald:problem:kafka-unavailable"
        assert int(refused.headers["retry-after"]) > 0
        await own_server.wait_readiness(False)

        own_broker.up()
        await own_server.wait_ready()
        [after] = await publish(own_server.base_url, topic, {"data": "after", "key": "k"})
        event = await ws_recv_op(ws, "event")
        # The 503'd publish may or may not have reached Kafka; what counts is that the
        # acknowledged one arrives on the connection that stayed open through the outage.
        while event["data"] != "after":
            event = await ws_recv_op(ws, "event")
    assert event["data"] == "after"
    assert after["offset"] in ("1", "2")
