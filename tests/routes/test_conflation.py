"""mode=latest: a client that falls behind gets the newest event of every key, not a close.

Two clients stop reading while events of many keys pour in: the ordinary one overflows its
queue and is closed as lagging (and resumes exactly from its cursor); the one that asked for
mode=latest is told how many it skipped and ends with the latest value of every key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ..clients import publish, sse, ws_recv, ws_recv_op, ws_send
from ..serving import InProcess, StartServer
from .test_slow_consumers import tiny_socket

KEYS = [f"k{n}" for n in range(20)]
ROUNDS = 60  # each round: one event of every key (1 200 events), far more than the queue
PAYLOAD = "x" * 4000  # big enough that socket buffers fill while a client reads nothing


@pytest.fixture(scope="module")
async def lossy(module_server_factory: StartServer) -> AsyncIterator[InProcess]:
    # A queue of 100 events; the send deadline far off: only the queue can cut a client.
    yield await module_server_factory(
        topics="it-.*", subscriber_queue_size="100", send_timeout_s="120", max_body_bytes="4194304"
    )


def stalled(server: InProcess, query: str = "") -> Any:
    return connect(
        f"{server.ws_url}/v1/ws{query}",
        sock=tiny_socket(server),
        max_queue=1,
        compression=None,
        ping_interval=None,
        max_size=None,
    )


async def publish_rounds(server: InProcess, topic: str) -> dict[str, int]:
    """Publish every round; what the last value of each key is."""
    last: dict[str, int] = {}
    for round_ in range(ROUNDS):
        body = [{"key": key, "data": {"round": round_, "pad": PAYLOAD}} for key in KEYS]
        await publish(server.base_url, topic, body)
        last.update(dict.fromkeys(KEYS, round_))
    return last


async def test_latest_ends_with_every_keys_newest_value_while_all_is_cut_as_lagging(
    lossy: InProcess, topic: str
) -> None:
    async with (
        stalled(lossy, f"?topic={topic}&mode=latest") as latest,
        stalled(lossy) as ordinary,
    ):
        await ws_recv_op(latest, "subscribed")
        await ws_send(ordinary, {"op": "subscribe", "topic": topic})
        await ws_recv_op(ordinary, "subscribed")
        last = await publish_rounds(lossy, topic)
        # A marker after everything: once the latest client has it, it has the rest too.
        [marker] = await publish(lossy.base_url, topic, {"key": "marker", "data": "end"})

        seen: dict[str, int] = {}
        skipped = 0
        events = 0
        while True:
            message = await ws_recv(latest)
            if message["op"] == "skipped":
                skipped += message["count"]
            elif message["op"] == "event":
                events += 1
                if message["key"] == "marker":
                    break
                seen[message["key"]] = message["data"]["round"]
        assert seen == last  # the newest value of every key
        assert skipped > 0 and events + skipped == ROUNDS * len(KEYS) + 1
        # Still open, and its cursor is exact: a resume from it has nothing more.
        await ws_send(latest, {"op": "ping"})
        assert (await ws_recv_op(latest, "pong"))["op"] == "pong"

        # The ordinary subscription overflowed: it reads what reached it, then is closed.
        got: list[dict[str, Any]] = []
        lagging: dict[str, Any] = {}
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                message = await ws_recv(ordinary)
                if message["op"] == "event":
                    got.append(message)
                elif message["op"] == "lagging":
                    lagging = message
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4409
    assert lagging["cursor"] == got[-1]["id"]
    # It resumes exactly: the rest, not one event twice, not one missing.
    total = ROUNDS * len(KEYS) + 1
    rest = await _resume(lossy, topic, lagging["cursor"], total - len(got))
    delivered = [(m["partition"], m["offset"]) for m in got + rest]
    assert len(set(delivered)) == len(delivered) == total
    assert (marker["partition"], marker["offset"]) in delivered


async def _resume(server: InProcess, topic: str, cursor: str, count: int) -> list[dict[str, Any]]:
    async with connect(f"{server.ws_url}/v1/ws", max_size=None) as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic, "since": cursor})
        await ws_recv_op(ws, "subscribed")
        return [await ws_recv_op(ws, "event") for _ in range(count)]


async def test_sse_and_pages_say_how_many_they_skipped(lossy: InProcess, topic: str) -> None:
    for n in range(5):
        await publish(lossy.base_url, topic, [{"key": "a", "data": n}, {"key": "b", "data": n}])
    async with httpx.AsyncClient(base_url=lossy.base_url) as client:
        page = (await client.get(f"/v1/topics/{topic}/events", params={"mode": "latest"})).json()
        refused = await client.get(f"/v1/topics/{topic}/events", params={"mode": "some"})
    assert [(e["key"], e["data"]) for e in page["events"]] == [("a", 4), ("b", 4)]
    assert page["skipped"] == 8
    assert refused.status_code == 400
    path = f"/v1/topics/{topic}/stream?mode=latest&since=earliest"
    async with sse(lossy.base_url, path) as stream:
        first = await stream.next_event()
    # The whole backlog was queued at once: the first thing said is what was skipped.
    assert first.event == "skipped" and first.json()["count"] > 0


async def test_a_subscribe_with_an_unknown_mode_is_refused(lossy: InProcess, topic: str) -> None:
    async with connect(f"{lossy.ws_url}/v1/ws") as ws:
        await ws_send(ws, {"op": "subscribe", "topic": topic, "mode": "fast"})
        with pytest.raises(ConnectionClosed) as closed:
            await ws_recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
