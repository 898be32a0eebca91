"""idle: 5 000 WebSocket and 5 000 SSE connections that only hold on; memory per connection."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from ..bench import Bench, ScenarioResult, seed_topic, split

DESCRIPTION = (
    "5 000 WebSocket connections (one subscription each) then 5 000 SSE streams on a topic "
    "without events, from 4 generator processes. Resident memory per connection = (Herald "
    "RSS with the connections - RSS before) / connections, on a fresh Herald process per "
    "run; idle CPU is measured while all are held open (the default window outlasts one SSE "
    "heartbeat interval, 15 s)."
)
WS_CONNECTIONS = 5000
SSE_CONNECTIONS = 5000
PROCESSES_EACH = 2


async def run(bench: Bench, result: ScenarioResult) -> None:
    hold = bench.pick(16.0, 5.0)
    for iteration in bench.iterations():
        async with AsyncExitStack() as stack:
            topic = bench.topic(result.name)
            server = await bench.herald(stack, result, [topic])
            await seed_topic(server, topic)
            meter = server.meter
            before = meter.rss_bytes()
            ws = await bench.spawn(
                stack,
                f"{result.name}-ws",
                "gen_ws",
                [
                    ["--port", str(server.port), "--topic", topic, "--connections", str(n)]
                    for n in split(WS_CONNECTIONS, PROCESSES_EACH)
                ],
                ready_within=300,
            )
            with_ws = meter.rss_bytes()
            sse = await bench.spawn(
                stack,
                f"{result.name}-sse",
                "gen_sse",
                [
                    ["--port", str(server.port), "--topic", topic, "--connections", str(n)]
                    for n in split(SSE_CONNECTIONS, PROCESSES_EACH)
                ],
                ready_within=300,
            )
            with_both = meter.rss_bytes()
            open_files = meter.open_files()
            profile_to = bench.profile_path("idle") if iteration.profiled else None
            async with server.window(profile_to) as window:
                await asyncio.sleep(hold)  # connections open, nothing to send
            after = meter.rss_bytes()
            stats = await ws.call({"cmd": "stats"}, "stats", 30) + await sse.call(
                {"cmd": "stats"}, "stats", 30
            )
            still_open = sum(int(s["open"]) for s in stats)
            heartbeats = sum(int(s["controls"].get("heartbeat", 0)) for s in stats)
            connect_s = {
                "ws": max(p.ready["connect_s"] for p in ws.processes),
                "sse": max(p.ready["connect_s"] for p in sse.processes),
            }
        total = WS_CONNECTIONS + SSE_CONNECTIONS
        bench.say(
            f"{iteration.label}: RSS {before >> 20} MiB -> {after >> 20} MiB with {still_open} "
            f"open connections; idle CPU {window.cpu_percent:.0f}%"
        )
        result.runs.append(
            {
                "iteration": iteration.label,
                "rss_before": before,
                "rss_with_ws": with_ws,
                "rss_with_ws_and_sse": with_both,
                "rss_after_hold": after,
                "open_files": open_files,
                "idle_cpu_percent": window.cpu_percent,
                "machine_busy_cores": window.machine_cores,
                "still_open": still_open,
                "heartbeats": heartbeats,
                "connect_s": connect_s,
            }
        )
        if still_open < total:
            result.note(f"{iteration.label}: only {still_open} of {total} connections stayed open")
        if iteration.profiled:
            if window.profile is not None and profile_to is not None:
                profile_to.with_suffix(".summary.txt").write_text(window.profile.text())
                result.profiles["idle"] = str(profile_to.with_suffix(".summary.txt"))
            continue
        kib = 1024
        result.add(
            "kib_per_conn",
            "RSS per idle connection (all)",
            "KiB",
            (after - before) / total / kib,
            better="lower",
        )
        result.add(
            "kib_per_ws",
            "RSS per idle WebSocket",
            "KiB",
            (with_ws - before) / WS_CONNECTIONS / kib,
            better="lower",
        )
        result.add(
            "kib_per_sse",
            "RSS per idle SSE stream",
            "KiB",
            (with_both - with_ws) / SSE_CONNECTIONS / kib,
            better="lower",
        )
        result.add(
            "idle_cpu",
            f"server CPU holding {total} idle connections",
            "%",
            window.cpu_percent,
            better="lower",
        )
        result.add(
            "rss_mib", "server RSS with all connections", "MiB", after / kib / kib, better=""
        )
        result.add(
            "connect_rate",
            "connections opened per second (WebSocket)",
            "/s",
            WS_CONNECTIONS / connect_s["ws"],
            better="",
        )
        result.note(
            f"{iteration.label}: {heartbeats} heartbeats received during the {hold:.0f}s hold; "
            f"Herald held {open_files} open files"
        )
