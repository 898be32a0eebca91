"""GET /v1/ws: subscribe, receive, publish and protocol errors over a real WebSocket."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from service.cursor import Cursor

from ..clients import publish, ws_recv, ws_recv_op, ws_send
from ..serving import InProcess
from .test_contract import check


def url(server: InProcess, query: str = "") -> str:
    return f"{server.ws_url}/v1/ws{query}"


@pytest.mark.parametrize("subprotocol", ["herald.v1.json", "herald.v1.msgpack"])
async def test_event_posted_over_http_arrives_over_websocket(
    server: InProcess, topic: str, subprotocol: str
) -> None:
    async with connect(url(server), subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == subprotocol
        await ws_send(ws, {"op": "subscribe", "topic": topic})
        subscribed = await ws_recv_op(ws, "subscribed")
        assert subscribed["topic"] == topic and subscribed["recovered"] is True
        [sent] = await publish(server.base_url, topic, {"data": {"n": 1}, "type": "greeting"})
        event = await ws_recv_op(ws, "event")
    assert event["topic"] == topic and event["data"] == {"n": 1}
    assert event["type"] == "greeting" and event["key"] is None
    # A whole-topic id names every partition; at the sent record's partition it is offset + 1.
    assert Cursor.decode(topic, event["id"]).as_dict()[sent["partition"]] == 1
    assert event["time"].endswith("Z")


async def test_msgpack_frames_are_binary_and_carry_binary_data(
    server: InProcess, topic: str
) -> None:
    async with connect(url(server), subprotocols=["herald.v1.msgpack"]) as ws:  # type: ignore[list-item]
        await ws_send(ws, {"op": "subscribe", "topic": topic})
        await ws_recv_op(ws, "subscribed")
        await ws_send(ws, {"op": "publish", "topic": topic, "data": b"\x00\xff", "ref": 7})
        frames = [await ws.recv() for _ in range(2)]
    assert all(isinstance(frame, bytes) for frame in frames)
    messages = {m["op"]: m for m in (msgpack.unpackb(f, raw=False) for f in frames)}
    assert messages["event"]["data"] == b"\x00\xff"
    assert messages["ack"]["ref"] == 7


async def test_keyed_subscription_sees_only_its_key(server: InProcess, topic: str) -> None:
    async with connect(url(server)) as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic, "key": "alice"})
        await ws_recv_op(ws, "subscribed")
        await publish(
            server.base_url,
            topic,
            [{"data": 1, "key": "bob"}, {"data": 2, "key": "alice"}, {"data": 3}],
        )
        sent = await publish(server.base_url, topic, {"data": 4, "key": "alice"})
        first = await ws_recv_op(ws, "event")
        second = await ws_recv_op(ws, "event")
    assert [first["data"], second["data"]] == [2, 4]
    # A keyed subscriber's id equals the id the publish answered with.
    assert second["id"] == sent[0]["id"]


async def test_two_topics_on_one_connection(server: InProcess, topic: str) -> None:
    other = topic.replace("it-", "other-")
    async with connect(url(server)) as ws:
        for name in (topic, other):
            await ws_send(ws, {"op": "subscribe", "topic": name})
            await ws_recv_op(ws, "subscribed")
        await publish(server.base_url, topic, {"data": "a"})
        await publish(server.base_url, other, {"data": "b"})
        received = {(await ws_recv_op(ws, "event"))["topic"] for _ in range(2)}
    assert received == {topic, other}


async def test_unsubscribe_stops_delivery(server: InProcess, topic: str) -> None:
    other = topic.replace("it-", "other-")
    async with connect(url(server)) as ws:
        for name in (topic, other):
            await ws_send(ws, {"op": "subscribe", "topic": name})
            await ws_recv_op(ws, "subscribed")
        await ws_send(ws, {"op": "unsubscribe", "topic": topic})
        # Ordering on the connection: once the pong arrives, the unsubscribe took effect.
        await ws_send(ws, {"op": "ping"})
        await ws_recv_op(ws, "pong")
        await publish(server.base_url, topic, {"data": "dropped"})
        await publish(server.base_url, other, {"data": "kept"})
        event = await ws_recv_op(ws, "event")
    assert (event["topic"], event["data"]) == (other, "kept")


async def test_url_parameters_subscribe_without_sending(server: InProcess, topic: str) -> None:
    async with connect(url(server, f"?topic={topic}&key=k1")) as ws:
        subscribed = await ws_recv_op(ws, "subscribed")
        assert subscribed["key"] == "k1"
        await publish(server.base_url, topic, [{"data": 0, "key": "k0"}, {"data": 1, "key": "k1"}])
        event = await ws_recv_op(ws, "event")
    assert event["data"] == 1


async def test_publish_op_is_acked_with_the_event_id(server: InProcess, topic: str) -> None:
    async with connect(url(server)) as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic, "key": "me"})
        await ws_recv_op(ws, "subscribed")
        await ws_send(
            ws, {"op": "publish", "topic": topic, "key": "me", "data": {"x": 1}, "ref": "r1"}
        )
        ack = await ws_recv_op(ws, "ack")
        event = await ws_recv_op(ws, "event")
    assert ack["ref"] == "r1"
    assert ack["id"] == event["id"]


async def test_resume_from_a_cursor_replays_what_was_missed(server: InProcess, topic: str) -> None:
    async with connect(url(server)) as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic})
        await ws_recv_op(ws, "subscribed")
        await publish(server.base_url, topic, [{"data": 1, "key": "k"}])
        first = await ws_recv_op(ws, "event")
    await publish(server.base_url, topic, [{"data": i, "key": "k"} for i in (2, 3)])
    async with connect(url(server)) as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic, "since": first["id"]})
        subscribed = await ws_recv_op(ws, "subscribed")
        replayed = [(await ws_recv_op(ws, "event"))["data"] for _ in range(2)]
    assert subscribed["recovered"] is True
    assert replayed == [2, 3]


async def test_ping_is_answered(server: InProcess) -> None:
    async with connect(url(server)) as ws:
        await ws_send(ws, {"op": "ping"})
        assert (await ws_recv(ws))["op"] == "pong"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"op": "subscribe", "topic": "not-exposed"}, "unknown-topic"),
        ({"op": "subscribe", "topic": "it-cursor", "since": "AAAA"}, "bad-cursor"),
        ({"op": "publish", "topic": "it-bad", "data": 1, "type": "a b"}, "invalid"),
    ],
)
async def test_op_errors_answer_an_error_and_keep_the_connection(
    server: InProcess, message: dict[str, object], code: str
) -> None:
    async with connect(url(server)) as ws:
        await ws_send(ws, message)
        error = await ws_recv(ws)
        assert error["op"] == "error" and error["code"] == code
        await ws_send(ws, {"op": "ping"})
        assert (await ws_recv(ws))["op"] == "pong"


@pytest.mark.parametrize(
    ("subprotocol", "frame", "close_code"),
    [
        ("herald.v1.json", "{not json", 4400),
        ("herald.v1.json", "[" * 30_000, 4400),
        ("herald.v1.json", json.dumps({"op": "dance"}), 4400),
        ("herald.v1.json", json.dumps(["subscribe"]), 4400),
        ("herald.v1.json", json.dumps({"op": "subscribe"}), 4400),
        ("herald.v1.json", b"\x81\xa2op\xa4ping", 4415),
        ("herald.v1.msgpack", json.dumps({"op": "ping"}), 4415),
        ("herald.v1.msgpack", b"\xc1", 4400),
    ],
)
async def test_protocol_violations_close_with_documented_codes(
    server: InProcess, subprotocol: str, frame: str | bytes, close_code: int
) -> None:
    async with connect(url(server), subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
        await ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == close_code


async def test_oversized_frame_closes_the_connection(server: InProcess) -> None:
    async with connect(url(server), max_size=None) as ws:
        await ws.send(json.dumps({"op": "ping", "pad": "x" * 70_000}))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_unknown_subprotocol_only_is_refused(server: InProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url(server), subprotocols=["chat"]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 400


async def test_other_clients_survive_a_misbehaving_one(server: InProcess, topic: str) -> None:
    async with connect(url(server)) as good:
        await ws_send(good, {"op": "subscribe", "topic": topic})
        await ws_recv_op(good, "subscribed")
        async with connect(url(server)) as bad:
            await bad.send("\x00garbage")
            with pytest.raises(ConnectionClosed):
                await bad.recv()
        await publish(server.base_url, topic, {"data": "still here"})
        assert (await ws_recv_op(good, "event"))["data"] == "still here"


# -- herald.v1.batch.*: several messages in one frame, only when the client offers it ------


def _decode(frame: bytes | str) -> dict[str, Any]:
    message: dict[str, Any] = (
        msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes) else json.loads(frame)
    )
    return message


async def _send(ws: ClientConnection, message: dict[str, Any]) -> None:
    binary = ws.subprotocol is not None and ws.subprotocol.endswith("msgpack")
    await ws.send(msgpack.packb(message) if binary else json.dumps(message))


async def _read_events(ws: ClientConnection, count: int) -> tuple[list[Any], set[str]]:
    """``count`` events' data, unpacking batches; and every op seen on the frames."""
    events: list[Any] = []
    ops: set[str] = set()
    while len(events) < count:
        frame = await ws.recv()
        assert isinstance(frame, bytes) == ws.subprotocol.endswith("msgpack")  # type: ignore[union-attr]
        message = _decode(frame)
        ops.add(message["op"])
        if message["op"] == "batch":
            check("WsServerMessage", message)  # the documented WsBatch shape
        inner = message["messages"] if message["op"] == "batch" else [message]
        for part in inner:
            assert part["op"] != "batch", "a batch holds messages, not batches"
            assert part["op"] != "error", part
            if part["op"] == "event":
                events.append(part["data"]["n"])
    return events, ops


@pytest.mark.parametrize(
    "subprotocol",
    ["herald.v1.batch.json", "herald.v1.batch.msgpack", "herald.v1.json", "herald.v1.msgpack"],
)
async def test_only_a_batch_client_gets_batches_and_every_client_gets_each_event_once_in_order(
    server: InProcess, topic: str, subprotocol: str
) -> None:
    await publish(server.base_url, topic, [{"key": "k", "data": {"n": n}} for n in range(60)])
    offered = [subprotocol, "herald.v1.json"]
    async with connect(url(server), subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == subprotocol
        # A resume from the ring queues the replay at once, behind `subscribed`: the writer
        # finds them all waiting together, so a batch client is sure to get a batch.
        await _send(ws, {"op": "subscribe", "topic": topic, "key": "k", "since": "earliest"})
        replayed, ops = await _read_events(ws, 60)
        body = [{"key": "k", "data": {"n": n}} for n in range(60, 160)]
        await publish(server.base_url, topic, body)
        live, live_ops = await _read_events(ws, 100)
        await _send(ws, {"op": "ping"})
        assert _decode(await ws.recv())["op"] in ("pong", "batch")
    assert replayed + live == list(range(160))
    if "batch" in subprotocol:
        assert "batch" in ops
    else:
        assert "batch" not in ops | live_ops
