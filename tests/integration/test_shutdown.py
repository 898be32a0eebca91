"""SIGTERM: every open stream is told to reconnect, with its cursor, before the process exits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ..clients import publish, sse, ws_recv_op, ws_send
from ..processes import HeraldProcess


@pytest.fixture
def own_server(kafka_bootstrap: str, tmp_path: Path) -> Iterator[HeraldProcess]:
    server = HeraldProcess(kafka_bootstrap, tmp_path / "herald.log", topics="it-.*")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_sigterm_says_goodbye_on_every_stream(own_server: HeraldProcess, topic: str) -> None:
    await own_server.wait_ready()
    async with (
        connect(f"{own_server.ws_url}/v1/ws?topic={topic}") as ws,
        sse(own_server.base_url, f"/v1/topics/{topic}/stream") as stream,
    ):
        await ws_recv_op(ws, "subscribed")
        await publish(own_server.base_url, topic, {"data": 1})
        delivered = await ws_recv_op(ws, "event")
        await stream.next_event()

        assert own_server.stop() == 0

        goodbye = await stream.next_event()
        with pytest.raises(ConnectionClosed) as closed:
            await ws_recv_op(ws, "never")
    assert goodbye.event == "shutdown"
    assert goodbye.json()["cursor"] == goodbye.id == delivered["id"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503


async def test_quiet_websocket_gets_heartbeats(
    kafka_bootstrap: str, tmp_path: Path, topic: str
) -> None:
    server = HeraldProcess(kafka_bootstrap, tmp_path / "hb.log", ws_heartbeat_s="0.2")
    server.start()
    try:
        await server.wait_ready()
        async with connect(f"{server.ws_url}/v1/ws") as ws:
            await ws_send(ws, {"op": "subscribe", "topic": topic})
            await ws_recv_op(ws, "subscribed")
            assert (await ws_recv_op(ws, "heartbeat"))["op"] == "heartbeat"
    finally:
        server.stop()
