"""A running server under fuzzing, watched by bystanders who must never notice the fuzzing.

Two observer WebSockets (one per subprotocol) follow every fuzzed topic for the whole module.
After each example a barrier publishes one sentinel event to every partition of every topic
and waits until both observers have received all of them: since a topic's events arrive in
partition order, everything the example published has then been delivered (or has killed
an observer). Snapshots must still answer. A failed check repairs the arena (new observers,
the ring flushed of the offending events) before it fails, so the next example starts clean.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from service.topics import partition_for_key

from ..processes import HeraldProcess
from .conftest import assert_process_alive, schema_errors, strict_json

JSON = "herald.v1.json"
MSGPACK = "herald.v1.msgpack"
SUBPROTOCOLS = (JSON, MSGPACK)
PARTITIONS = 3  # the server's default HERALD_TOPIC_PARTITIONS
RING_SIZE = 8  # conftest.SERVER_SETTINGS["ring_size"]


def encode_for(subprotocol: str, message: Any) -> str | bytes:
    if subprotocol == MSGPACK:
        packed: bytes = msgpack.packb(message, use_bin_type=True)
        return packed
    return json.dumps(message)


def decode_server_frame(subprotocol: str, frame: str | bytes) -> Any:
    """A server frame as the client of ``subprotocol`` reads it; fails on the wrong kind."""
    if subprotocol == MSGPACK:
        assert isinstance(frame, bytes), f"text frame on {MSGPACK}: {frame[:200]!r}"
        return msgpack.unpackb(frame, raw=False)
    assert isinstance(frame, str), f"binary frame on {JSON}: {frame[:200]!r}"
    return strict_json(frame)


def check_server_message(message: Any) -> None:
    """A server frame is one documented op and matches its schema in openapi.yaml."""
    assert isinstance(message, dict), message
    errors = schema_errors("WsServerMessage", _jsonable(message))
    assert not errors, f"server frame breaks WsServerMessage: {errors[:3]}: {_short(message)}"


def _jsonable(value: Any) -> Any:
    # msgpack carries binary data; the schema leaves `data` open, so any stand-in will do.
    if isinstance(value, dict):
        return {k if isinstance(k, str) else repr(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes | msgpack.ExtType | msgpack.Timestamp):
        return repr(value)
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "..."


def keys_for_every_partition(partitions: int = PARTITIONS) -> list[str]:
    """One record key per partition (Kafka's default partitioner, as Herald computes it)."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        key = f"sentinel-{n}"
        found.setdefault(partition_for_key(key, partitions), key)
        n += 1
    return [found[p] for p in range(partitions)]


@dataclass
class Observer:
    subprotocol: str
    ws: ClientConnection
    # Sentinels seen: (topic, key, round).
    seen: set[tuple[str, str, int]] = field(default_factory=set)


@dataclass
class Arena:
    server: HeraldProcess = field(repr=False)
    topics: Sequence[str]
    observers: dict[str, Observer] = field(default_factory=dict, repr=False)
    sentinel_keys: list[str] = field(default_factory=keys_for_every_partition, repr=False)
    round: int = field(default=0, repr=False)

    async def start(self) -> None:
        # Create the topics with their partitions before anyone subscribes.
        await self._publish_sentinels()
        for subprotocol in SUBPROTOCOLS:
            await self._open(subprotocol)

    async def stop(self) -> None:
        for observer in self.observers.values():
            await observer.ws.close()

    async def _open(self, subprotocol: str) -> None:
        ws = await connect(
            f"{self.server.ws_url}/v1/ws",
            subprotocols=[subprotocol],  # type: ignore[list-item]
            max_size=None,
            # Unread frames must not pause reading (and so hide the server's close frame).
            max_queue=None,
        )
        observer = self.observers[subprotocol] = Observer(subprotocol, ws)
        for topic in self.topics:
            await ws.send(encode_for(subprotocol, {"op": "subscribe", "topic": topic}))
        subscribed = 0
        while subscribed < len(self.topics):
            message = await self._next(observer)
            subscribed += message["op"] == "subscribed"

    async def _next(self, observer: Observer) -> dict[str, Any]:
        message = decode_server_frame(observer.subprotocol, await observer.ws.recv())
        check_server_message(message)
        assert message["op"] != "error", message
        data = message.get("data")
        if message["op"] == "event" and isinstance(data, dict) and "sentinel" in data:
            observer.seen.add((message["topic"], message["key"], data["sentinel"]))
        result: dict[str, Any] = message
        return result

    async def _publish_sentinels(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=15) as client:
            for topic in self.topics:
                body = [
                    {"key": key, "data": {"sentinel": self.round}} for key in self.sentinel_keys
                ]
                answer = await client.post(f"/v1/topics/{topic}/events", json=body)
                assert answer.status_code == 201, answer.text

    async def check(self, within: float = 15.0) -> None:
        """Everything published so far reached both observers, who are still fine."""
        assert_process_alive(self.server)
        self.round += 1
        await self._publish_sentinels()
        wanted = {(t, k, self.round) for t in self.topics for k in self.sentinel_keys}
        for observer in self.observers.values():
            observer.seen = {seen for seen in observer.seen if seen[2] >= self.round}
        problems: list[str] = []
        for subprotocol, observer in list(self.observers.items()):
            try:
                async with asyncio.timeout(within):
                    while not wanted <= observer.seen:
                        await self._next(observer)
            except ConnectionClosed as exc:
                problems.append(
                    f"a bystander on {subprotocol} was disconnected: "
                    f"close {exc.rcvd.code if exc.rcvd else None} "
                    f"{exc.rcvd.reason if exc.rcvd else '(no close frame)'!r}"
                )
            except TimeoutError:
                problems.append(f"a bystander on {subprotocol} got no sentinel in {within} s")
            except AssertionError as exc:
                problems.append(f"a bystander on {subprotocol} got a bad frame: {exc}")
        problems += await self._snapshots_answer()
        if problems:
            await self._repair()
            raise AssertionError("; ".join(problems))

    async def _snapshots_answer(self) -> list[str]:
        problems = []
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=15) as client:
            for topic in self.topics:
                answer = await client.get(f"/v1/topics/{topic}/snapshot")
                if answer.status_code != 200:
                    problems.append(f"snapshot of {topic}: {answer.status_code} {answer.text}")
                    continue
                try:
                    body = strict_json(answer.content)
                except ValueError as exc:
                    problems.append(f"snapshot of {topic} is not JSON: {exc}")
                    continue
                errors = schema_errors("Snapshot", body)
                if errors:
                    problems.append(f"snapshot of {topic} breaks the schema: {errors[:3]}")
        return problems

    async def _repair(self) -> None:
        """Fresh observers and a ring holding only harmless events, for the next example."""
        for subprotocol, observer in list(self.observers.items()):
            await observer.ws.close()
            await self._open(subprotocol)
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=15) as client:
            for topic in self.topics:
                body = [{"data": {"flush": uuid.uuid4().hex}} for _ in range(RING_SIZE)]
                await client.post(f"/v1/topics/{topic}/events", json=body)
