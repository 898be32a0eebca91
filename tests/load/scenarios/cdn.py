"""cdn-snapshot: a hot snapshot read by many clients through Varnish, with and without purge."""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx

from ...processes import Varnish
from ..bench import Bench, ScenarioResult, seed_topic
from ..server import Server, publisher_token

DESCRIPTION = (
    "GET /v1/topics/{topic}/snapshot through Varnish (deploy/varnish) from 2 generator "
    "processes with 50 keep-alive connections each, while 20 events/s are published to the "
    "origin. Origin requests per second = snapshot requests Herald answered (200 and 304, "
    "from its /metrics) / wall time. Run twice: max-age=1 (the default), and max-age=3600 "
    "with purge on publish (HERALD_PURGE_URL). Staleness = from a publish's 201 until the "
    "snapshot at the edge holds that event, while the readers go on (10 probes 1.5 s apart, "
    "the edge polled every 10 ms)."
)
READERS = 2
CONNECTIONS = 50
RATE = 20
PROBES = 10
# Probes are this far apart: each is the first event after a quiet purge interval (1 s).
PROBE_GAP_S = 1.5
SNAPSHOT_COUNTER = 'herald_http_requests_total{endpoint="snapshot"'


async def run(bench: Bench, result: ScenarioResult) -> None:
    for label, settings in (
        ("max-age 1", {"snapshot_max_age_s": "1"}),
        ("max-age 3600 + purge", {"snapshot_max_age_s": "3600", "purge_interval_s": "1"}),
    ):
        await _variant(bench, result, label, settings)


async def _variant(
    bench: Bench, result: ScenarioResult, label: str, settings: dict[str, str]
) -> None:
    async with AsyncExitStack() as stack:
        topic = bench.topic(result.name)
        cache = Varnish(bench.out_dir / f"varnish-{label.split()[1]}")
        if "purge_interval_s" in settings:
            settings = {**settings, "purge_url": cache.base_url}
        server = await bench.herald(stack, result, [topic], **settings)
        cache.up([server.process])
        stack.callback(cache.down)
        await seed_topic(server, topic, 50)
        path = f"/v1/topics/{topic}/snapshot"
        readers = await bench.spawn(
            stack, f"{result.name}-readers", "gen_http", [["--port", str(cache.port)]] * READERS
        )
        publisher = await bench.spawn(
            stack, f"{result.name}-publisher", "gen_http", [server.publisher_args()]
        )
        duration = bench.pick(10.0, 5.0)
        for iteration in bench.iterations():
            if iteration.profiled:
                continue
            before = await _origin_snapshots(server)
            read: dict[str, Any] = {
                "cmd": "load",
                "method": "GET",
                "path": path,
                "duration": duration,
                "concurrency": CONNECTIONS,
            }
            post = {"cmd": "steady", "topic": topic, "rate": RATE, "duration": duration, "batch": 1}
            reads, _posts = await asyncio.gather(
                readers.call(read, "result", duration + 60),
                publisher.call(post, "published", duration + 60),
            )
            origin = (await _origin_snapshots(server)) - before
            requests = sum(int(answer["requests"]) for answer in reads)
            wall = max(float(answer["wall_s"]) for answer in reads)
            # Staleness of a topic that is read all the time and written now and then.
            reading = {**read, "duration": PROBES * PROBE_GAP_S + 2}
            _reads, staleness = await asyncio.gather(
                readers.call(reading, "result", reading["duration"] + 60),
                _staleness(server, cache, topic),
            )
            bench.say(
                f"{iteration.label} {label}: {requests / wall:.0f} requests/s at the edge, "
                f"{origin / wall:.2f}/s at the origin, staleness p50 "
                f"{statistics.median(staleness) * 1000:.0f} ms"
            )
            tag = "purge" if "purge_url" in settings else "maxage1"
            result.add(f"edge_rps_{tag}", f"edge requests/s ({label})", "/s", requests / wall)
            result.add(
                f"origin_rps_{tag}",
                f"origin snapshot requests/s ({label})",
                "/s",
                origin / wall,
                better="lower",
            )
            result.add(
                f"stale_p50_{tag}",
                f"staleness p50 ({label})",
                "ms",
                statistics.median(staleness) * 1000,
                better="lower",
            )
            result.add(
                f"stale_max_{tag}",
                f"staleness max ({label})",
                "ms",
                max(staleness) * 1000,
                better="lower",
            )


async def _origin_snapshots(server: Server) -> float:
    samples = await server.metrics()
    return sum(value for name, value in samples.items() if name.startswith(SNAPSHOT_COUNTER))


async def _staleness(server: Server, cache: Varnish, topic: str) -> list[float]:
    """Seconds from each publish's 201 until the snapshot at the edge holds the event."""
    headers = {"Authorization": f"Bearer {publisher_token()}"}
    seconds = []
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as origin,
        httpx.AsyncClient(base_url=cache.base_url, timeout=30) as edge,
    ):
        for probe in range(PROBES):
            await asyncio.sleep(PROBE_GAP_S)
            marker = f"probe-{time.time_ns()}-{probe}"
            answer = await origin.post(f"/v1/topics/{topic}/events", json={"data": marker})
            answer.raise_for_status()
            published = time.monotonic()
            while True:
                events = (await edge.get(f"/v1/topics/{topic}/snapshot")).json()["events"]
                if any(event["data"] == marker for event in events):
                    break
                await asyncio.sleep(0.01)
            seconds.append(time.monotonic() - published)
    return seconds
