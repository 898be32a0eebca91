"""``herald serve --workers 2``: two processes on one socket, both serving and delivering, and
one /metrics for both."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..clients import publish, ws_recv_op, ws_send
from ..processes import HeraldProcess, serving
from ..scrape import scrape

MAX_CONNECTIONS = 200


@pytest.fixture
async def workers(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[HeraldProcess]:
    server = HeraldProcess(
        kafka_bootstrap, tmp_path / "herald.log", ["--workers", "2"], topics="it-.*"
    )
    async with serving(server):
        yield server


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces: the parent pid comes after its closing ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def owner(ws: ClientConnection, server_port: int, pids: set[int]) -> int | None:
    """Which of ``pids`` holds the server end of ``ws`` (from /proc/net/tcp and fds)."""
    client_port = ws.transport.get_extra_info("sockname")[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            inode = fields[9]
    if inode is None:
        return None
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


async def test_two_workers_both_serve_and_deliver_and_stop_cleanly(
    workers: HeraldProcess, topic: str
) -> None:
    assert workers.process is not None
    # The parent starts both workers before either can answer /readyz.
    pids = children(workers.process.pid)
    assert len(pids) == 2
    async with AsyncExitStack() as stack:
        by_worker: dict[int, list[ClientConnection]] = {pid: [] for pid in pids}
        # The kernel picks a worker per connection: connect until each has some.
        for _ in range(MAX_CONNECTIONS):
            ws = await stack.enter_async_context(connect(f"{workers.ws_url}/v1/ws"))
            await ws_send(ws, {"op": "subscribe", "topic": topic, "key": "k"})
            await ws_recv_op(ws, "subscribed")
            pid = owner(ws, workers.port, pids)
            assert pid is not None
            by_worker[pid].append(ws)
            if all(len(held) >= 2 for held in by_worker.values()):
                break
        assert all(by_worker.values()), {pid: len(held) for pid, held in by_worker.items()}
        everyone = [ws for held in by_worker.values() for ws in held]
        await publish(workers.base_url, topic, [{"key": "k", "data": {"n": n}} for n in range(5)])
        for ws in everyone:
            got = [(await ws_recv_op(ws, "event"))["data"]["n"] for _ in range(5)]
            assert got == list(range(5))

        # Whichever worker answers /metrics shows both workers' figures.
        for _ in range(4):
            metrics = await scrape(workers.base_url)
            assert metrics.label_values("herald_connections", "worker") == {"0", "1"}
            assert metrics.total("herald_connections", transport="ws") == len(everyone)
            assert metrics.total("herald_subscriptions", transport="ws") == len(everyone)
            assert metrics.total("herald_deliveries_total", transport="ws") == 5 * len(everyone)
            assert metrics.total(
                "herald_delivery_latency_seconds_count", transport="ws"
            ) == 5 * len(everyone)

        # SIGTERM to the parent reaches every worker: each client is told to reconnect.
        workers.process.send_signal(signal.SIGTERM)
        for ws in everyone:
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503
    assert await asyncio.to_thread(workers.process.wait, 30) == 0
    assert not children(workers.process.pid)
