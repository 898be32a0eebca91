"""keyed: per-user notifications, each subscriber on its own key of one topic."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from ..bench import Bench, Delivery, ScenarioResult, seed_topic, spans
from ..control import GeneratorProcess, Generators
from ..server import Server

DESCRIPTION = (
    "1 topic, one WebSocket connection per key with one keyed subscription each (per-user "
    "notifications), first 1 000 keys, then 10 000. Events are POSTed in batches at a steady "
    "rate, spread round-robin over the subscribed keys, so each event has exactly one "
    "subscriber in both phases: the server CPU per event should not grow with the number of "
    "other keys' subscribers. Idle CPU is measured with all connections open and no events."
)
SMALL = 1000
LARGE = 10_000
SMALL_PROCESSES = 2
LARGE_PROCESSES = 4  # added for the keys SMALL..LARGE
RATE = 500
BATCH = 25


async def run(bench: Bench, result: ScenarioResult) -> None:
    async with AsyncExitStack() as stack:
        topic = bench.topic(result.name)
        server = await bench.herald(stack, result, [topic])
        await seed_topic(server, topic)
        publisher = (
            await bench.spawn(
                stack, f"{result.name}-publisher", "gen_http", [server.publisher_args()]
            )
        ).processes[0]
        ranges: list[tuple[int, int]] = []  # (first key, connections) per generator
        groups: list[Generators] = []
        for phase, (total, processes) in enumerate(
            ((SMALL, SMALL_PROCESSES), (LARGE, LARGE_PROCESSES))
        ):
            first = sum(count for _first, count in ranges)
            added = spans(total - first, processes, first)
            group = await bench.spawn(
                stack,
                f"{result.name}-subscribers",
                "gen_ws",
                [
                    [
                        "--port",
                        str(server.port),
                        "--topic",
                        topic,
                        "--connections",
                        str(n),
                        "--first-key",
                        str(key),
                    ]
                    for key, n in added
                ],
            )
            ranges += added
            groups.append(group)
            connect_s = max(p.ready["connect_s"] for p in group.processes)
            result.note(
                f"phase {phase + 1}: {total - first} connections opened in {connect_s:.1f}s "
                f"({(total - first) / connect_s:.0f}/s)"
            )
            await measure_phase(bench, result, server, topic, publisher, groups, ranges, total)
        small = result.metrics.get(f"us_per_event@{SMALL // 1000}k")
        large = result.metrics.get(f"us_per_event@{LARGE // 1000}k")
        if small and large:
            for per_small, per_large in zip(small.values, large.values, strict=False):
                result.add(
                    "growth",
                    f"CPU per event, {LARGE // 1000}k / {SMALL // 1000}k subscribers",
                    "x",
                    per_large / per_small,
                    better="lower",
                )


async def measure_phase(
    bench: Bench,
    result: ScenarioResult,
    server: Server,
    topic: str,
    publisher: GeneratorProcess,
    groups: list[Generators],
    ranges: list[tuple[int, int]],
    keys: int,
) -> None:
    subscribers = Generators([p for group in groups for p in group.processes])

    def expects(accepted: int) -> list[int]:
        # Event n goes to key n % keys: each key gets accepted // keys, the first few one more.
        whole, rest = divmod(accepted, keys)
        return [n * whole + max(0, min(first + n, rest) - first) for first, n in ranges]

    duration = bench.pick(10.0, 5.0)
    steady = {
        "topic": topic,
        "rate": RATE,
        "duration": duration,
        "batch": BATCH,
        "keys": keys,
        "pad": 64,
    }
    await bench.deliver(server, subscribers, expects, publisher, {**steady, "duration": 1})
    label = f"{keys // 1000}k"
    for iteration in bench.iterations():
        async with server.window() as idle:
            # No events: what merely holding the connections costs.
            await asyncio.sleep(bench.pick(3.0, 2.0))
        profile_to = bench.profile_path(f"keyed-{label}") if iteration.profiled else None
        delivery = await bench.deliver(server, subscribers, expects, publisher, steady, profile_to)
        _record(
            result,
            label,
            keys,
            iteration.profiled,
            iteration.label,
            idle.cpu_percent,
            delivery,
            profile_to,
        )


def _record(
    result: ScenarioResult,
    label: str,
    keys: int,
    profiled: bool,
    run_label: str,
    idle_cpu: float,
    delivery: Delivery,
    profile_to: Path | None,
) -> None:
    window = delivery.window
    events = int(delivery.published["accepted"])
    result.runs.append(
        {
            "subscribers": keys,
            "iteration": run_label,
            "events": events,
            "deliveries": delivery.deliveries,
            "expected": delivery.expected,
            "server_cpu_s": window.cpu_s,
            "machine_busy_cores": window.machine_cores,
            "wall_s": window.wall_s,
            "idle_cpu_percent": idle_cpu,
            "latency_ms": delivery.latency.summary_ms(),
            "controls": delivery.controls,
            "timed_out": delivery.timed_out,
        }
    )
    statuses = delivery.published.get("statuses", {})
    if set(statuses) - {"201"}:
        result.note(f"{run_label} with {keys} subscribers: POSTs were answered {statuses}")
    if delivery.deliveries < delivery.expected:
        result.note(
            f"{run_label} with {keys} subscribers: {delivery.deliveries} of "
            f"{delivery.expected} deliveries arrived"
        )
    if profiled:
        if window.profile is not None and profile_to is not None:
            profile_to.with_suffix(".summary.txt").write_text(window.profile.text())
            result.profiles[label] = str(profile_to.with_suffix(".summary.txt"))
        return
    per_event_us = 1e6 * window.cpu_s / events if events else float("nan")
    result.add(
        f"us_per_event@{label}",
        f"server CPU per event ({label} subscribers)",
        "us",
        per_event_us,
        better="lower",
    )
    # What the same connections cost without events (heartbeats, timers), taken out.
    busy_s = window.cpu_s - idle_cpu / 100 * window.wall_s
    result.add(
        f"us_per_event_net@{label}",
        f"  same, minus the idle CPU of {label} connections",
        "us",
        1e6 * busy_s / events if events else float("nan"),
        better="lower",
    )
    result.add(
        f"idle_cpu@{label}", f"server CPU idle ({label} connections)", "%", idle_cpu, better="lower"
    )
    for name, key in (("p50", "p50_ms"), ("p99", "p99_ms")):
        result.add(
            f"{name}@{label}",
            f"latency {name} ({label} subscribers)",
            "ms",
            delivery.latency.summary_ms()[key],
            better="lower",
        )
    result.add_latency(f"keyed {label} subscribers", delivery.latency, delivery.timeline)
