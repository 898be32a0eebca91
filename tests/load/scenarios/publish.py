"""publish: events accepted per second with acks=all, one per POST and 100 per POST."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from ..bench import Bench, ScenarioResult, seed_topic
from ..histogram import Histogram

DESCRIPTION = (
    "POST /v1/topics/{topic}/events closed loop from 2 generator processes: single events "
    "with 16 concurrent keep-alive connections per process, and batches of 100 events with "
    "4 per process. Counted: events in 201 answers (given only after Kafka acknowledged "
    "them with acks=all). Herald also consumes them back, as in production."
)
PROCESSES = 2
MODES = (
    # (label, events per POST, connections per process)
    ("single", 1, 16),
    ("batch100", 100, 4),
)


WORKERS_DESCRIPTION = (
    "publish served by `herald serve --workers 2` (a parent and two workers sharing the "
    "listening socket; each connection is served by one). Server CPU is theirs together."
)


async def run(bench: Bench, result: ScenarioResult, workers: int = 1) -> None:
    async with AsyncExitStack() as stack:
        topic = bench.topic(result.name)
        server = await bench.herald(stack, result, [topic], workers)
        await seed_topic(server, topic)
        generators = await bench.spawn(
            stack,
            f"{result.name}-clients",
            "gen_http",
            [server.publisher_args() for _ in range(PROCESSES)],
        )
        duration = bench.pick(5.0, 3.0)
        for iteration in bench.iterations():
            for label, batch, connections in MODES:
                command: dict[str, Any] = {
                    "cmd": "load",
                    "method": "POST",
                    "path": f"/v1/topics/{topic}/events",
                    "duration": duration,
                    "concurrency": connections,
                    "batch": batch,
                    "pad": 64,
                }
                profile_to = bench.profile_path(f"publish-{label}") if iteration.profiled else None
                async with server.window(profile_to) as window:
                    answers = await generators.call(command, "result", duration + 60)
                events = sum(int(a["events"]) for a in answers)
                statuses: dict[str, int] = {}
                for answer in answers:
                    for code, count in answer["statuses"].items():
                        statuses[code] = statuses.get(code, 0) + count
                latency = Histogram.merged(Histogram.from_json(a["latency"]) for a in answers)
                wall = max(float(a["wall_s"]) for a in answers)
                result.runs.append(
                    {
                        "iteration": iteration.label,
                        "mode": label,
                        "events": events,
                        "statuses": statuses,
                        "wall_s": wall,
                        "server_cpu_s": window.cpu_s,
                        "machine_busy_cores": window.machine_cores,
                        "latency_ms": latency.summary_ms(),
                    }
                )
                bench.say(f"{iteration.label} {label}: {events / wall:.0f} events/s")
                refused = sum(n for code, n in statuses.items() if code != "201")
                if set(statuses) != {"201"}:
                    result.note(f"{iteration.label} {label}: answers {statuses}")
                if iteration.profiled:
                    if window.profile is not None and profile_to is not None:
                        summary = profile_to.with_suffix(".summary.txt")
                        summary.write_text(window.profile.text())
                        result.profiles[label] = str(summary)
                    continue
                result.add(
                    f"eps_{label}", f"events accepted per second ({label})", "/s", events / wall
                )
                result.add(
                    f"per_cpu_{label}",
                    f"events per server CPU-s ({label})",
                    "/CPU-s",
                    events / window.cpu_s if window.cpu_s else 0.0,
                )
                result.add(
                    f"p99_{label}",
                    f"POST latency p99 ({label})",
                    "ms",
                    latency.summary_ms()["p99_ms"],
                    better="lower",
                )
                result.add(
                    f"refused_{label}",
                    f"POSTs not answered 201 ({label})",
                    "",
                    refused,
                    better="lower",
                )


async def run_2_workers(bench: Bench, result: ScenarioResult) -> None:
    await run(bench, result, workers=2)
