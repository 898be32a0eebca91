"""firehose: what one instance spends reading Kafka, with no subscriber at all."""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack

from ..bench import Bench, ScenarioResult
from .fanout import PAD_BYTES
from .topics import start_producer, wait_broadcasters

DESCRIPTION = (
    "100 topics x 3 partitions, no subscribers: a producer (tests/load/gen_kafka.py, Herald's "
    "record format, whole batches per partition; events keyed over 30 keys per topic, so "
    "every partition has its share) writes into Kafka as fast as it can, while Herald reads "
    "every partition and keeps each event in its topic's ring. Records Herald read per second "
    "and per server CPU-second (the ceiling every instance shares: each reads every exposed "
    "partition), the producer's rate beside it (producer, Kafka and Herald share the "
    "machine), and whether Herald kept up: the records it had not read when the producer "
    "stopped (its counter against the producer's acknowledged records), how long it took to "
    "read them, and herald_consumer_lag_records (probed every second) at that moment."
)
TOPICS = 100
PARTITIONS = 3
KEYS = 30


async def run(bench: Bench, result: ScenarioResult) -> None:
    loop = asyncio.get_running_loop()
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
            "keys": KEYS,
            "pad": PAD_BYTES,
        }
        warm = await producer.call({**flood, "duration": 1}, "flooded", 120)
        # Herald started at the empty topics' end: it has read all once its counter says so.
        produced = int(warm["acked"])
        duration = bench.pick(10.0, 5.0)
        for iteration in bench.iterations():
            await server.wait_consumed(produced, within=300)  # no backlog left from before
            profile_to = bench.profile_path(result.name) if iteration.profiled else None
            before = await server.metrics()
            async with server.window(profile_to) as window:
                flooded = await producer.call({**flood, "duration": duration}, "flooded", 300)
            after = await server.metrics()
            produced += int(flooded["acked"])
            read = after["herald_records_consumed_total"] - before["herald_records_consumed_total"]
            behind = produced - after["herald_records_consumed_total"]
            lag = after.get("herald_consumer_lag_records", 0.0)
            caught_up = loop.time()
            await server.wait_consumed(produced, within=300)
            catch_up_s = loop.time() - caught_up if behind > 0 else 0.0
            result.runs.append(
                {
                    "iteration": iteration.label,
                    "read": read,
                    "produced": flooded["acked"],
                    "server_cpu_s": window.cpu_s,
                    "wall_s": window.wall_s,
                    "machine_busy_cores": window.machine_cores,
                    "producer_cpu_s": flooded["cpu_s"],
                    "producer_errors": flooded["errors"],
                    "behind_records_at_end": behind,
                    "catch_up_s": catch_up_s,
                    "lag_records_metric_at_end": lag,
                }
            )
            bench.say(
                f"{iteration.label}: produced {flooded['rate']:.0f}/s, Herald read "
                f"{read / window.wall_s:.0f}/s with {window.cpu_s:.1f} CPU-s in "
                f"{window.wall_s:.1f}s, {behind:.0f} records behind at the end "
                f"(machine: {window.machine_cores:.1f} cores busy)"
            )
            if flooded["errors"]:
                result.note(f"{iteration.label}: producer errors {flooded['errors']}")
            if iteration.profiled:
                result.keep_profile("firehose", window, profile_to)
                continue
            result.add("per_cpu", "records read per server CPU-s", "/CPU-s", read / window.cpu_s)
            result.add("rate", "records read per second", "/s", read / window.wall_s, better="")
            result.add("cpu", "server CPU", "%", window.cpu_percent, better="")
            result.add("produced", "records produced per second", "/s", float(flooded["rate"]), "")
            result.add(
                "producer_cpu",
                "producer CPU",
                "%",
                100 * float(flooded["cpu_s"]) / window.wall_s,
                better="",
            )
            result.add(
                "behind", "records not read when the producer stopped", "records", behind, "lower"
            )
            result.add("catch_up", "time to read them", "s", catch_up_s, better="lower")
            result.add("lag", "herald_consumer_lag_records then", "records", lag, better="lower")
