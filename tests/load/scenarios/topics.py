"""topics: many topics with a few subscribers each, events spread evenly over them."""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack

from ..bench import Bench, ScenarioResult, spans
from ..control import GeneratorProcess
from ..server import Server
from .fanout import PAD_BYTES, record

DESCRIPTION = (
    "10 000 topics of 1 partition each (2 000 with --quick; 3 partitions each would be 30 000 "
    "partitions on one local broker), 5 WebSocket subscribers per topic: 1 000 connections "
    "that subscribe to 50 topics each, over 2 generator processes. Events are produced "
    "straight into Kafka (tests/load/gen_kafka.py, Herald's own record format) at 2 000 a "
    "second, round-robin over the topics, so the server's CPU is the consuming and fanning "
    "out of many small topics, not the publish path: deliveries per server CPU-second and "
    "server CPU per delivery (against fanout-ws's one topic), end-to-end latency, idle CPU with "
    "every topic read and no events, server RSS."
)
SUBSCRIBERS_PER_TOPIC = 5
TOPICS_PER_CONNECTION = 50
PROCESSES = 2
RATE = 2000


async def run(bench: Bench, result: ScenarioResult) -> None:
    count = bench.pick(10_000, 2_000)
    connections = count * SUBSCRIBERS_PER_TOPIC // TOPICS_PER_CONNECTION
    async with AsyncExitStack() as stack:
        prefix = bench.topic(result.name)
        producer = await start_producer(bench, stack, result)
        began = asyncio.get_running_loop().time()
        await producer.call(
            {"cmd": "create", "topic": prefix, "topics": count, "partitions": 1}, "created", 900
        )
        result.note(f"{count} topics created in {asyncio.get_running_loop().time() - began:.0f}s")
        server = await bench.herald(stack, result, [], topics=re.escape(prefix) + r"-\d{5}")
        began = asyncio.get_running_loop().time()
        await wait_broadcasters(server, count, within=600)
        result.note(
            f"Herald read all {count} topics {asyncio.get_running_loop().time() - began:.0f}s "
            "after it was ready"
        )
        async with server.window() as idle:
            await asyncio.sleep(bench.pick(5.0, 3.0))
        result.add(
            "idle_cpu", f"server CPU idle, {count} topics read", "%", idle.cpu_percent, "lower"
        )
        subscribers = await bench.spawn(
            stack,
            f"{result.name}-subscribers",
            "gen_ws",
            [
                [
                    "--port",
                    str(server.port),
                    "--topic",
                    prefix,
                    "--topics-each",
                    str(TOPICS_PER_CONNECTION),
                    "--topic-count",
                    str(count),
                    "--first-connection",
                    str(first),
                    "--connections",
                    str(n),
                ]
                for first, n in spans(connections, PROCESSES)
            ],
            ready_within=600,
        )
        result.note(
            f"{connections} connections with {TOPICS_PER_CONNECTION} subscriptions each opened "
            f"in {max(p.ready['connect_s'] for p in subscribers.processes):.1f}s"
        )
        result.add(
            "rss", "server RSS with every subscriber", "MiB", server.meter.rss_bytes() / 2**20, ""
        )

        def expects(accepted: int) -> list[int]:
            # Event n went to topic n % count; connection c reads topics c*50 .. c*50+49.
            whole, rest = divmod(accepted, count)
            per_topic = [whole + (1 if topic < rest else 0) for topic in range(count)]
            return [
                sum(
                    per_topic[number % count]
                    for connection in range(first, first + n)
                    for number in range(
                        connection * TOPICS_PER_CONNECTION,
                        (connection + 1) * TOPICS_PER_CONNECTION,
                    )
                )
                for first, n in spans(connections, PROCESSES)
            ]

        steady = {"topic": prefix, "topics": count, "partitions": 1, "rate": RATE, "pad": PAD_BYTES}
        await bench.deliver(server, subscribers, expects, producer, {**steady, "duration": 1})
        for iteration in bench.iterations():
            profile_to = bench.profile_path(f"{result.name}-{RATE}") if iteration.profiled else None
            delivery = await bench.deliver(
                server,
                subscribers,
                expects,
                producer,
                {**steady, "duration": bench.pick(10.0, 5.0)},
                profile_to,
            )
            record(result, RATE, iteration, delivery, profile_to)
            if not iteration.profiled and delivery.deliveries:
                result.add(
                    "us_per_delivery",
                    "server CPU per delivery",
                    "µs",
                    1e6 * delivery.window.cpu_s / delivery.deliveries,
                    better="lower",
                )


async def start_producer(
    bench: Bench, stack: AsyncExitStack, result: ScenarioResult
) -> GeneratorProcess:
    """A gen_kafka process writing to the benchmark's broker."""
    spawned = await bench.spawn(
        stack, f"{result.name}-producer", "gen_kafka", [["--bootstrap", bench.bootstrap]]
    )
    return spawned.processes[0]


async def wait_broadcasters(server: Server, count: int, within: float) -> None:
    """Wait until Herald reads ``count`` topics (each with a broadcaster, none subscribed)."""
    await server.wait_metric("herald_broadcasters_idle", count, within)
