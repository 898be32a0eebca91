"""floor: what this machine allows without Herald, next to which Herald's figures are read."""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import AsyncExitStack
from typing import Any

from ..bench import Bench, ScenarioResult, split
from ..histogram import Histogram
from .fanout import PAD_BYTES, PROCESSES, SUBSCRIBERS

DESCRIPTION = (
    "No Herald (tests/load/floors.py). loopback: one process writes each event (250 bytes) "
    f"to {SUBSCRIBERS} loopback TCP sockets in a plain loop, 20 events/s, 2 reader processes "
    "with epoll: latency from just before the first write to each receipt, the kernel's "
    "share of fanout-ws at 20 events/s. websocket: fanout-ws's subscribers (gen_ws) on "
    "the least WebSocket server (tests/load/floor_ws.py: the upgrade, `subscribed`, then "
    "each event encoded once and written to every subscriber), 20 and 100 events/s: the "
    "latency those clients see from a server that does nothing else. kafka: an aiokafka producer "
    "(acks=all) and consumer with Herald's client settings, 20 events/s: latency from send "
    "to consumption. "
    "hypercorn-idle: Hypercorn with Herald's configuration serving an ASGI app that only "
    "holds 5 000 WebSockets and then 5 000 SSE streams: resident memory per connection "
    "before any Quart or Herald object."
)
RATE = 20
# fanout-ws's throughput rate: one write per event and subscriber, as a server that does not
# batch would make them.
BUSY_RATE = 100


async def run(bench: Bench, result: ScenarioResult) -> None:
    duration = bench.pick(10.0, 5.0)
    idle_each = bench.pick(5000, 2000)
    for iteration in bench.iterations():
        if iteration.profiled:
            continue  # nothing of Herald's to profile
        loopback = await floor(
            bench,
            "loopback",
            ["--sockets", str(SUBSCRIBERS), "--rate", str(RATE), "--duration", str(duration)],
        )
        websocket, websocket_per_cpu_s = await websocket_floor(bench, duration, RATE)
        busy, busy_per_cpu_s = await websocket_floor(bench, duration, BUSY_RATE)
        kafka = await floor(
            bench,
            "kafka",
            ["--bootstrap", bench.bootstrap, "--rate", str(RATE), "--duration", str(duration)],
        )
        idle = await floor(bench, "hypercorn-idle", ["--connections", str(idle_each)])
        bench.say(
            f"{iteration.label}: loopback p99 {loopback['latency_ms']['p99_ms']:.1f} ms, "
            f"least WebSocket server p99 {websocket.percentile(99) * 1e3:.1f} ms, "
            f"kafka p99 {kafka['latency_ms']['p99_ms']:.1f} ms, "
            f"hypercorn {idle['bytes_per_connection'] / 1024:.1f} KiB per idle connection"
        )
        figures = [
            *percentiles(
                "loopback",
                f"loopback fan-out latency {{}} ({SUBSCRIBERS} sockets, {RATE} ev/s)",
                loopback["latency_ms"],
            ),
            *percentiles(
                "websocket",
                f"least WebSocket server to gen_ws, latency {{}} ({RATE} ev/s)",
                websocket.summary_ms(),
            ),
            (
                "websocket_per_cpu_s",
                f"least WebSocket server: deliveries per CPU-s ({RATE} ev/s)",
                "/CPU-s",
                websocket_per_cpu_s,
            ),
            *percentiles(
                "websocket_busy",
                f"least WebSocket server to gen_ws, latency {{}} ({BUSY_RATE} ev/s)",
                busy.summary_ms(),
            ),
            (
                "websocket_busy_per_cpu_s",
                f"least WebSocket server: deliveries per CPU-s ({BUSY_RATE} ev/s)",
                "/CPU-s",
                busy_per_cpu_s,
            ),
            (
                "loopback_span",
                f"time to write one event to {SUBSCRIBERS} sockets, p50",
                "ms",
                loopback["span_ms"]["p50_ms"],
            ),
            (
                "loopback_write",
                "writer CPU per loopback write",
                "µs",
                loopback["writer_cpu_us_per_write"],
            ),
            *percentiles(
                "kafka",
                f"Kafka send-to-consume latency {{}} ({RATE} ev/s, acks=all)",
                kafka["latency_ms"],
            ),
            *(
                (
                    f"hypercorn_{kind}",
                    f"Hypercorn alone: RSS per {label}",
                    "KiB",
                    idle[f"bytes_per_{kind}"] / 1024,
                )
                for kind, label in (
                    ("connection", "idle connection (all)"),
                    ("ws", "idle WebSocket"),
                    ("sse", "idle SSE stream"),
                )
            ),
        ]
        for key, name, unit, value in figures:
            # Context for Herald's figures, not a score of its own.
            result.add(key, name, unit, value, better="")
        result.runs.append(
            {
                "iteration": iteration.label,
                "loopback": loopback,
                "websocket_latency_ms": websocket.summary_ms(),
                "websocket_busy_latency_ms": busy.summary_ms(),
                "kafka": kafka,
                "idle": idle,
            }
        )


def percentiles(
    key: str, name: str, summary: dict[str, float]
) -> list[tuple[str, str, str, float]]:
    """p50 and p99 of a latency summary (``Histogram.summary_ms``) as figures; ``name`` has a
    ``{}`` for the percentile."""
    return [(f"{key}_{p}", name.format(p), "ms", summary[f"{p}_ms"]) for p in ("p50", "p99")]


async def floor(bench: Bench, kind: str, args: list[str]) -> dict[str, Any]:
    """Run ``python -m tests.load.floors kind args``; its JSON line."""
    log = bench.logs / f"floor-{kind}.log"
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.load.floors",
            kind,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), 300)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"floors {kind} exited with {process.returncode}: see {log}")
    answer: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return answer


async def websocket_floor(bench: Bench, duration: float, rate: int) -> tuple[Histogram, float]:
    """fanout-ws's subscribers on tests/load/floor_ws.py at ``rate`` events/s: their latency
    histogram, and the server's deliveries per CPU-second."""
    async with AsyncExitStack() as stack:
        server = (await bench.spawn(stack, "floor-ws-server", "floor_ws", [[]])).processes[0]
        per_process = split(SUBSCRIBERS, PROCESSES)
        subscribers = await bench.spawn(
            stack,
            "floor-ws-subscribers",
            "gen_ws",
            [
                ["--port", str(server.ready["port"]), "--topic", "floor", "--connections", str(n)]
                for n in per_process
            ],
        )
        answers: list[dict[str, Any]] = []
        # A first second to warm up, as the fan-out scenarios have; then the measured window.
        for seconds in (1.0, duration):
            await subscribers.call({"cmd": "measure"}, "measuring", 120)
            steady = {"cmd": "steady", "rate": rate, "duration": seconds, "pad": PAD_BYTES}
            published = await server.call(steady, "published", seconds + 60)
            answers = await subscribers.call(
                [
                    {"cmd": "drain", "expect": int(published["accepted"]) * n, "within": 60}
                    for n in per_process
                ],
                "drained",
                90,
            )
    delivered = sum(int(a["events"]) for a in answers)
    latency = Histogram.merged(Histogram.from_json(a["latency"]) for a in answers)
    return latency, delivered / float(published["cpu_s"])
