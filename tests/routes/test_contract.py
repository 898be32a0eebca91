"""What the running service sends matches schemas/ (openapi.yaml and event.schema.json)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator
from websockets.asyncio.client import connect

from ..clients import sse, ws_recv, ws_send
from ..processes import ROOT
from ..serving import InProcess

OPENAPI = yaml.safe_load((ROOT / "schemas" / "openapi.yaml").read_text())
EVENT_SCHEMA = json.loads((ROOT / "schemas" / "event.schema.json").read_text())


def component(name: str) -> Draft202012Validator:
    """A validator for one schema of openapi.yaml, resolving its $refs inside the document."""
    return Draft202012Validator({**OPENAPI, "$ref": f"#/components/schemas/{name}"})


def check(name: str, instance: Any) -> None:
    errors = [error.message for error in component(name).iter_errors(instance)]
    assert not errors, (name, instance, errors)


async def test_http_bodies_match_openapi(server: InProcess, topic: str) -> None:
    async with (
        sse(server.base_url, f"/v1/topics/{topic}/stream") as stream,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        published = await client.post(
            f"/v1/topics/{topic}/events", json=[{"data": 1, "key": "k"}, {"data": [2]}]
        )
        check("PublishResult", published.json())
        for _ in range(2):
            message = await stream.next_event()
            Draft202012Validator(EVENT_SCHEMA).validate(message.json())
        snapshot = await client.get(f"/v1/topics/{topic}/snapshot")
        check("Snapshot", snapshot.json())
        page = await client.get(f"/v1/topics/{topic}/events", params={"limit": 1})
        check("HistoryPage", page.json())
        problem = await client.post(f"/v1/topics/{topic}/events", json={"nodata": 1})
        check("Problem", problem.json())
        ready = await client.get("/readyz")
        check("Readiness", ready.json())


@pytest.mark.parametrize("subprotocol", ["herald.v1.json", "herald.v1.msgpack"])
async def test_websocket_frames_match_openapi(
    server: InProcess, topic: str, subprotocol: str
) -> None:
    sent = [
        {"op": "subscribe", "topic": topic, "key": "k"},
        {"op": "publish", "topic": topic, "key": "k", "data": {"a": 1}, "ref": "r"},
        {"op": "subscribe", "topic": "not-exposed"},
        {"op": "ping"},
    ]
    for message in sent:
        check("WsClientMessage", message)
    async with connect(f"{server.ws_url}/v1/ws", subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
        for message in sent:
            await ws_send(ws, message)
        received = {}
        while set(received) != {"subscribed", "ack", "event", "error", "pong"}:
            message = await ws_recv(ws)
            received[message["op"]] = message
    for message in received.values():
        check("WsServerMessage", message)
