"""firehose: what one instance spends reading Kafka, with no subscriber at all."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack

from ..bench import Bench, ScenarioResult
from .fanout import PAD_BYTES
from .topics import start_producer, wait_broadcasters

DESCRIPTION = (
    "100 topics x 3 partitions, no subscribers: a producer (tests/load/gen_kafka.py, Herald's "
    "record format, batched) writes events into Kafka as fast as it can, while Herald reads "
    "every partition and keeps each event in its topic's ring. Records Herald read per second "
    "and per server CPU-second (the ceiling every instance shares: each reads every exposed "
    "partition), the producer's rate beside it, and Herald's consumer lag at the end (did it "
    "keep up)."
)
TOPICS = 100
PARTITIONS = 3


async def run(bench: Bench, result: ScenarioResult) -> None:
    async with AsyncExitStack() as stack:
        prefix = bench.topic(result.name)
        producer = await start_producer(bench, stack, result)
        await producer.call(
            {"cmd": "create", "topic": prefix, "topics": TOPICS, "partitions": PARTITIONS},
            "created",
            300,
        )
        server = await bench.herald(stack, result, [], topics=re.escape(prefix) + r"-\d{5}")
        await wait_broadcasters(server, TOPICS, within=120)
        flood = {
            "cmd": "flood",
            "topic": prefix,
            "topics": TOPICS,
            "partitions": PARTITIONS,
            "pad": PAD_BYTES,
        }
        await producer.call({**flood, "duration": 1}, "flooded", 120)  # warm-up
        duration = bench.pick(10.0, 5.0)
        for iteration in bench.iterations():
            if iteration.profiled:
                continue  # the profile of reading alone: see fanout's profiles' aiokafka share
            before = await server.metrics()
            async with server.window() as window:
                flooded = await producer.call({**flood, "duration": duration}, "flooded", 300)
            after = await server.metrics()
            read = after["herald_records_consumed_total"] - before["herald_records_consumed_total"]
            lag = after.get("herald_consumer_lag_records", 0.0)
            result.runs.append(
                {
                    "iteration": iteration.label,
                    "read": read,
                    "produced": flooded["acked"],
                    "server_cpu_s": window.cpu_s,
                    "wall_s": window.wall_s,
                    "producer_cpu_s": flooded["cpu_s"],
                    "lag_records_after": lag,
                }
            )
            result.add("per_cpu", "records read per server CPU-s", "/CPU-s", read / window.cpu_s)
            result.add("rate", "records read per second", "/s", read / window.wall_s, better="")
            result.add("cpu", "server CPU", "%", window.cpu_percent, better="")
            result.add("produced", "records produced per second", "/s", float(flooded["rate"]), "")
            result.add("lag", "consumer lag at the end", "records", lag, better="lower")
