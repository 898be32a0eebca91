"""catchup: one SSE client resumes from a cursor that many events have passed."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx

from service.config import Settings

from ..bench import Bench, ScenarioResult, seed_topic, split

DESCRIPTION = (
    "Take the topic's cursor from a snapshot, publish N events after it (batches of 100, "
    "2 generator processes with 4 connections each), wait until Herald has consumed them "
    "all (its /metrics), then open one SSE stream with ?since=<cursor> and read until all "
    "N arrived: events per second from the request to the last event. The client follows "
    "`lagging` by reconnecting with Last-Event-ID, as EventSource does, and counts `reset`s."
)
PUBLISHERS = 2
CONNECTIONS = 4
# Default settings: N is far beyond the ring (HERALD_RING_SIZE), so the resume reads Kafka.
# (To measure a replay from the ring instead, raise ring_size and subscriber_queue_size
# above N here.)
SETTINGS: dict[str, str] = {}


async def run(bench: Bench, result: ScenarioResult) -> None:
    events: int = bench.pick(100_000, 20_000)
    async with AsyncExitStack() as stack:
        topic = bench.topic(result.name)
        server = await bench.herald(stack, result, [topic], **SETTINGS)
        await seed_topic(server, topic)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            response = await client.get(f"/v1/topics/{topic}/snapshot")
            response.raise_for_status()
        cursor = response.json()["cursor"]
        publishers = await bench.spawn(
            stack,
            f"{result.name}-publishers",
            "gen_http",
            [server.publisher_args() for _ in range(PUBLISHERS)],
        )
        consumed = (await server.metrics()).get("herald_records_consumed_total", 0)
        answers = await publishers.call(
            [
                {
                    "cmd": "load",
                    "method": "POST",
                    "path": f"/v1/topics/{topic}/events",
                    "duration": 600,
                    "count": share,
                    "concurrency": CONNECTIONS,
                    "batch": 100,
                    "pad": 64,
                }
                for share in split(events, PUBLISHERS)
            ],
            "result",
            660,
        )
        accepted = sum(int(a["events"]) for a in answers)
        publish_wall = max(float(a["wall_s"]) for a in answers)
        # The replay should have the server to itself: wait until the live feed is through.
        await server.wait_consumed(consumed + accepted, within=120)
        result.note(
            f"published {accepted} events in {publish_wall:.1f}s "
            f"({accepted / publish_wall:.0f}/s) before the catch-up runs"
        )
        bench.say(f"published {accepted} events in {publish_wall:.1f}s")
        reader = await bench.spawn(
            stack,
            f"{result.name}-reader",
            "gen_sse",
            [["--port", str(server.port), "--topic", topic, "--connections", "0"]],
        )
        for iteration in bench.iterations():
            profile_to = bench.profile_path("catchup") if iteration.profiled else None
            async with server.window(profile_to) as window:
                (caught,) = await reader.call(
                    {"cmd": "catchup", "since": cursor, "expect": accepted, "within": 300},
                    "caught-up",
                    330,
                )
            bench.say(
                f"{iteration.label}: {caught['events']} events in {caught['wall_s']:.2f}s, "
                f"{caught['reconnects']} reconnections"
            )
            caught["machine_busy_cores"] = window.machine_cores
            record(result, iteration.label, iteration.profiled, accepted, caught, window.cpu_s)
            if iteration.profiled and window.profile is not None and profile_to is not None:
                summary = profile_to.with_suffix(".summary.txt")
                summary.write_text(window.profile.text())
                result.profiles["catchup"] = str(summary)
        ring_size = int(SETTINGS.get("ring_size", Settings().ring_size))
        result.note(f"path measured: {path(events, ring_size, result.runs)}")


def path(events: int, ring_size: int, runs: list[dict[str, Any]]) -> str:
    controls: dict[str, int] = {}
    reconnects = 0
    for run in runs:
        reconnects += int(run["reconnects"])
        for name, count in run["controls"].items():
            controls[name] = controls.get(name, 0) + count
    if controls.get("reset"):
        return "reset: the server did not replay from the cursor"
    where = (
        f"the in-memory ring ({ring_size} events)"
        if ring_size >= events
        else f"Kafka ({events} events, beyond the {ring_size}-event ring)"
    )
    how = f", in {reconnects} lagging reconnections" if reconnects else ", in one stream"
    return f"replay from {where}{how}"


def record(
    result: ScenarioResult,
    label: str,
    profiled: bool,
    expected: int,
    caught: dict[str, Any],
    cpu_s: float,
) -> None:
    result.runs.append({"iteration": label, "expected": expected, "server_cpu_s": cpu_s, **caught})
    if not caught["complete"]:
        result.note(f"{label}: {caught['events']} of {expected} events arrived")
    if profiled:
        return
    wall = float(caught["wall_s"])
    result.add("eps", "events replayed per second", "/s", caught["events"] / wall if wall else 0)
    result.add(
        "per_cpu",
        "events replayed per server CPU-s",
        "/CPU-s",
        caught["events"] / cpu_s if cpu_s else 0.0,
    )
    if caught["first_event_s"] is not None:
        result.add(
            "first",
            "time to first replayed event",
            "ms",
            1e3 * caught["first_event_s"],
            better="lower",
        )
