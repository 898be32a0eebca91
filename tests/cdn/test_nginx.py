"""Through nginx: TLS and HTTP/2 for clients, WebSocket and SSE to several Herald instances."""

from __future__ import annotations

import asyncio
from pathlib import Path

from websockets.asyncio.client import connect

from ..clients import publish, sse, ws_recv_op, ws_send
from ..processes import HeraldProcess, Nginx
from ..tokens import token
from .conftest import SNAPSHOT, client_of, origin_answers, trusting, until


async def test_clients_get_tls_and_http2_and_hsts(nginx: Nginx) -> None:
    async with client_of(nginx) as client:
        response = await client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    # nginx says the client came over HTTPS, and Herald (trusting it) answers as HTTPS does.
    assert "max-age=" in response.headers["strict-transport-security"]


async def test_health_and_metrics_are_not_for_the_public(nginx: Nginx) -> None:
    async with client_of(nginx) as client:
        for path in ("/metrics", "/healthz", "/readyz"):
            assert (await client.get(path)).status_code == 404, path


async def test_every_upstream_serves(
    nginx: Nginx, origin: HeraldProcess, second_origin: HeraldProcess, topic: str
) -> None:
    await publish(origin.base_url, topic, {"data": 1})
    before = [await origin_answers(server, SNAPSHOT) for server in (origin, second_origin)]
    async with client_of(nginx) as client:
        for _ in range(4):
            response = await client.get(f"/v1/topics/{topic}/snapshot")
            assert response.status_code == 200
    after = [await origin_answers(server, SNAPSHOT) for server in (origin, second_origin)]
    assert all(now > then for now, then in zip(after, before, strict=True))


async def test_server_sent_events_arrive_over_http2_unbuffered(
    nginx: Nginx, origin: HeraldProcess, topic: str
) -> None:
    url = f"/v1/topics/{topic}/stream"
    async with sse(nginx.base_url, url, verify=trusting(nginx), http2=True) as stream:
        assert stream.response.http_version == "HTTP/2"
        for n in range(3):
            await publish(origin.base_url, topic, {"data": n})
            # Each event arrives while the stream stays open: nothing holds it back.
            assert (await stream.next_event()).json()["data"] == n


async def test_websocket_upgrades_pass_through_tls(
    nginx: Nginx, origin: HeraldProcess, topic: str
) -> None:
    url = f"{nginx.ws_url}/v1/ws"
    async with connect(url, subprotocols=["herald.v1.json"], ssl=trusting(nginx)) as ws:
        assert ws.subprotocol == "herald.v1.json"
        await ws_send(ws, {"op": "subscribe", "topic": topic})
        await ws_recv_op(ws, "subscribed")
        await publish(origin.base_url, topic, {"data": "through"})
        assert (await ws_recv_op(ws, "event"))["data"] == "through"


async def test_a_long_poll_is_held_and_answered_through_the_proxy(
    nginx: Nginx, origin: HeraldProcess, topic: str
) -> None:
    await publish(origin.base_url, topic, {"data": "old"})
    async with client_of(nginx, timeout=40) as client:
        head = (await client.get(f"/v1/topics/{topic}/events", params={"wait": 20})).json()
        waiting = asyncio.create_task(
            client.get(f"/v1/topics/{topic}/events", params={"after": head["next"], "wait": 20})
        )
        await publish(origin.base_url, topic, {"data": "new"})
        answer = await waiting
    assert [event["data"] for event in answer.json()["events"]] == ["new"]


async def test_the_access_log_never_holds_a_token(nginx: Nginx, topic: str) -> None:
    reader = token("alice", subscribe=["*"])
    path = f"/v1/topics/{topic}/snapshot?access_token={reader}"
    async with client_of(nginx) as client:
        assert (await client.get(path)).status_code == 200
    log = nginx.work_dir / "access.log"
    await until(lambda: asyncio.to_thread(_logged, log, "/snapshot"))
    assert reader not in log.read_text()


def _logged(log: Path, fragment: str) -> bool:
    return log.exists() and fragment in log.read_text()
