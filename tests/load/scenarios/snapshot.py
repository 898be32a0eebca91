"""snapshot: a hot snapshot requested over and over, answered 200 and, revalidated, 304."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx

from ..bench import Bench, ScenarioResult, seed_topic
from ..histogram import Histogram

DESCRIPTION = (
    "GET /v1/topics/{topic}/snapshot of a topic holding 50 events (the default snapshot "
    "limit), closed loop from 2 generator processes with 8 keep-alive connections each: "
    "once plain (200 with the body), once with If-None-Match of the current ETag (304)."
)
EVENTS = 50
PROCESSES = 2
CONNECTIONS = 8


async def run(bench: Bench, result: ScenarioResult) -> None:
    async with AsyncExitStack() as stack:
        topic = bench.topic(result.name)
        server = await bench.herald(stack, result, [topic])
        await seed_topic(server, topic, EVENTS)
        path = f"/v1/topics/{topic}/snapshot"
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            response = await client.get(path)
            response.raise_for_status()
        etag = response.headers["ETag"]
        result.note(f"the 200 body is {len(response.content)} bytes with {EVENTS} events")
        generators = await bench.spawn(
            stack,
            f"{result.name}-clients",
            "gen_http",
            [server.publisher_args() for _ in range(PROCESSES)],
        )
        duration = bench.pick(5.0, 3.0)
        for iteration in bench.iterations():
            for status, headers in ((200, {}), (304, {"If-None-Match": etag})):
                command: dict[str, Any] = {
                    "cmd": "load",
                    "method": "GET",
                    "path": path,
                    "headers": headers,
                    "duration": duration,
                    "concurrency": CONNECTIONS,
                }
                profile_to = (
                    bench.profile_path(f"snapshot-{status}") if iteration.profiled else None
                )
                async with server.window(profile_to) as window:
                    answers = await generators.call(command, "result", duration + 60)
                requests = sum(int(a["requests"]) for a in answers)
                statuses: dict[str, int] = {}
                for answer in answers:
                    for code, count in answer["statuses"].items():
                        statuses[code] = statuses.get(code, 0) + count
                latency = Histogram.merged(Histogram.from_json(a["latency"]) for a in answers)
                wall = max(float(a["wall_s"]) for a in answers)
                result.runs.append(
                    {
                        "iteration": iteration.label,
                        "expected_status": status,
                        "requests": requests,
                        "statuses": statuses,
                        "wall_s": wall,
                        "server_cpu_s": window.cpu_s,
                        "machine_busy_cores": window.machine_cores,
                        "latency_ms": latency.summary_ms(),
                    }
                )
                bench.say(f"{iteration.label} {status}: {requests / wall:.0f} requests/s")
                if set(statuses) != {str(status)}:
                    result.note(f"{iteration.label}: expected only {status}, got {statuses}")
                if iteration.profiled:
                    if window.profile is not None and profile_to is not None:
                        summary = profile_to.with_suffix(".summary.txt")
                        summary.write_text(window.profile.text())
                        result.profiles[str(status)] = str(summary)
                    continue
                result.add(f"rps{status}", f"requests per second ({status})", "/s", requests / wall)
                result.add(
                    f"per_cpu{status}",
                    f"requests per server CPU-s ({status})",
                    "/CPU-s",
                    requests / window.cpu_s if window.cpu_s else 0.0,
                )
                result.add(
                    f"p99_{status}",
                    f"request latency p99 ({status})",
                    "ms",
                    latency.summary_ms()["p99_ms"],
                    better="lower",
                )
