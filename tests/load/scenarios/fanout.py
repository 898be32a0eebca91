"""fanout-ws (-2w, -batch), fanout-sse (-h3), fanout-msgpack: 1 topic, 1 000 subscribers, a
publisher."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from tests.certificates import make_certificates
from tests.processes import free_port

from ..bench import Bench, Delivery, Iteration, ScenarioResult, seed_topic, split

DESCRIPTION = (
    "1 topic, 1 000 {transport} subscribers (one subscription each, spread over generator "
    "processes); events POSTed one per request at a steady rate. Deliveries per server "
    "CPU-second = events received by all clients / CPU time of the Herald process from the "
    "first POST until the last subscriber has every event. Latency = client receive time - "
    "the publisher's send time carried in the event data."
)
SUBSCRIBERS = 1000
PROCESSES = 2
# Small events, like notifications: about 250 bytes on the wire with Herald's envelope.
PAD_BYTES = 64


WORKERS_DESCRIPTION = (
    "fanout-ws served by `herald serve --workers 2`: a parent and two worker processes on one "
    "listening socket, the kernel handing each connection to one worker, each worker consuming "
    "every event. Server CPU is the parent's and the workers' together."
)


H3_DESCRIPTION = (
    "1 topic, 1 000 SSE subscribers over HTTP/1.1 with TLS, then 1 000 over HTTP/3 (QUIC, one "
    "connection each, as browser tabs have), each time on a fresh Herald serving both; events "
    "POSTed over HTTPS at {rate} a second. Deliveries per server CPU-second, latency, and "
    "resident memory per connection (Herald RSS with the subscribers - RSS before, / 1 000), "
    "for each protocol."
)
# HTTP/3 in Python costs several times what HTTP/1.1 does per delivery: at 10 events/s
# (10 000 deliveries/s) both protocols stay within what one core serves, so the figures are
# per-delivery costs, not a saturated server's.
H3_RATE = 10


async def websocket_json(bench: Bench, result: ScenarioResult, workers: int = 1) -> None:
    # 100 events/s is the throughput target; 20 events/s (20 000 deliveries/s) the latency
    # one; 500 events/s (500 000 deliveries/s) is past what this machine carries: where and
    # how it saturates (the subscribers' own CPU is reported beside the server's).
    await fanout(
        bench, result, "gen_ws", ["--format", "json"], rates=[100, 20, 500], workers=workers
    )


async def websocket_json_2_workers(bench: Bench, result: ScenarioResult) -> None:
    await websocket_json(bench, result, workers=2)


async def websocket_batch(bench: Bench, result: ScenarioResult) -> None:
    # herald.v1.batch.json: what waits for a connection goes out as one batch message.
    await fanout(bench, result, "gen_ws", ["--format", "batch-json"], rates=[100, 20])


async def websocket_msgpack(bench: Bench, result: ScenarioResult) -> None:
    await fanout(bench, result, "gen_ws", ["--format", "msgpack"], rates=[100])


async def many_subscribers(bench: Bench, result: ScenarioResult) -> None:
    # 10 000 connections, 4 generator processes as keyed's large phase has; 10 events/s is
    # 100 000 deliveries a second, as fanout-ws at 100 events/s.
    await fanout(
        bench,
        result,
        "gen_ws",
        ["--format", "json"],
        rates=[10],
        subscribers_count=bench.pick(10_000, 5_000),
        processes=4,
    )


MANY_DESCRIPTION = (
    "1 topic, 10 000 WebSocket subscribers (5 000 with --quick; 4 generator processes, file "
    "limits raised by the runner and each generator), one event POSTed every 100 ms: "
    "deliveries per server CPU-second, end-to-end latency, server RSS per connection (the "
    "growth of Herald's resident memory as the subscribers connected, divided by their number)."
)


async def sse(bench: Bench, result: ScenarioResult) -> None:
    await fanout(bench, result, "gen_sse", [], rates=[100])


async def sse_h3(bench: Bench, result: ScenarioResult) -> None:
    certificates = make_certificates(bench.logs / "tls")
    for label in ("h1", "h3"):
        quic_port = free_port()  # a UDP port: free for TCP, and in practice for UDP too
        settings = {
            "tls_cert": str(certificates.server_cert),
            "tls_key": str(certificates.server_key),
            "quic_bind": f"127.0.0.1:{quic_port}",
        }
        # The HTTP/3 subscribers go to the QUIC port (the last --port wins).
        extra = ["--http3", "--port", str(quic_port)] if label == "h3" else []
        await fanout(bench, result, "gen_sse", extra, [H3_RATE], settings=settings, label=label)


def steady(topic: str, rate: float, duration: float) -> dict[str, Any]:
    return {"topic": topic, "rate": rate, "duration": duration, "batch": 1, "pad": PAD_BYTES}


async def fanout(
    bench: Bench,
    result: ScenarioResult,
    module: str,
    extra: list[str],
    rates: list[int],
    workers: int = 1,
    subscribers_count: int = SUBSCRIBERS,
    processes: int = PROCESSES,
    settings: dict[str, str] | None = None,
    label: str = "",
) -> None:
    """``label`` names the figures of one of several servers a scenario measures in turn."""
    async with AsyncExitStack() as stack:
        topic = bench.topic(f"{result.name}{label}")
        server = await bench.herald(stack, result, [topic], workers, **(settings or {}))
        await seed_topic(server, topic)
        per_process = split(subscribers_count, processes)
        rss_before = server.meter.rss_bytes()
        subscribers = await bench.spawn(
            stack,
            f"{result.name}{label}-subscribers",
            module,
            [
                [*server.client_args(), "--topic", topic, "--connections", str(n), *extra]
                for n in per_process
            ],
        )
        rss_per_connection = (server.meter.rss_bytes() - rss_before) / subscribers_count
        result.note(
            f"{label + ': ' if label else ''}{subscribers_count} subscribers connected in "
            f"{max(p.ready['connect_s'] for p in subscribers.processes):.1f}s "
            f"by {processes} generator processes"
        )
        if workers > 1:
            # How the kernel spread the subscribers: each holds one descriptor in its worker.
            held = server.meter.open_files_by_process()
            result.note(
                "open descriptors per Herald process with the subscribers connected: "
                + ", ".join(f"{count} (pid {pid})" for pid, count in held.items())
                + " (the parent first)"
            )
        publisher = (
            await bench.spawn(
                stack, f"{result.name}-publisher", "gen_http", [server.publisher_args()]
            )
        ).processes[0]

        def expects(accepted: int) -> list[int]:
            return [accepted * n for n in per_process]

        duration = bench.pick(10.0, 5.0)
        # Warm-up, not measured: first connections to Kafka partitions, first allocations.
        await bench.deliver(server, subscribers, expects, publisher, steady(topic, rates[0], 1))
        for rate in rates:
            for iteration in bench.iterations():
                profile_to = (
                    bench.profile_path(f"{result.name}-{rate}") if iteration.profiled else None
                )
                delivery = await bench.deliver(
                    server,
                    subscribers,
                    expects,
                    publisher,
                    steady(topic, rate, duration),
                    profile_to,
                )
                record(result, rate, iteration, delivery, profile_to, label)
        name = f" ({label})" if label else ""
        result.add(
            f"kib_per_conn{'-' + label if label else ''}",
            f"server RSS per subscriber{name}",
            "KiB",
            rss_per_connection / 1024,
            better="lower",
        )


def record(
    result: ScenarioResult,
    rate: int,
    iteration: Iteration,
    delivery: Delivery,
    profile_to: Path | None,
    label: str = "",
) -> None:
    """Add one window's figures to ``result`` (a profiled window only to the notes)."""
    window = delivery.window
    latency = delivery.latency
    run = {
        "label": label,
        "rate": rate,
        "iteration": iteration.label,
        "deliveries": delivery.deliveries,
        "expected": delivery.expected,
        "server_cpu_s": window.cpu_s,
        "machine_busy_cores": window.machine_cores,
        "wall_s": window.wall_s,
        "client_cpu_s": delivery.client_cpu_s,
        "per_cpu_s": delivery.per_cpu_s,
        "latency_ms": latency.summary_ms(),
        "published": {k: v for k, v in delivery.published.items() if k != "post_latency"},
        "controls": delivery.controls,
        "timed_out": delivery.timed_out,
        "reopened": delivery.reopened,
        "server_system_percent": window.system_percent,
    }
    result.runs.append(run)
    if delivery.timed_out or delivery.deliveries < delivery.expected:
        result.note(
            f"{iteration.label} at {rate}/s: {delivery.deliveries} of {delivery.expected} "
            f"deliveries arrived before the drain limit"
        )
    statuses = delivery.published.get("statuses", {})
    if set(statuses) - {"201"}:
        result.note(
            f"{iteration.label} at {rate}/s: the publisher's POSTs were answered {statuses}"
        )
    if delivery.reopened:
        result.note(
            f"{iteration.label} at {rate}/s: {delivery.reopened} subscribers had been closed by "
            "the server and were reconnected before this window"
        )
    late = float(delivery.published.get("max_lateness_s", 0))
    if late > 0.1:
        result.note(
            f"{iteration.label} at {rate}/s: the publisher fell up to {late:.1f}s behind its "
            "schedule (POST answers too slow for its open-loop connection pool); latency is "
            "measured from the actual send"
        )
    unusual = {k: v for k, v in delivery.controls.items() if k not in ("subscribed", "retry")}
    if unusual:
        result.note(f"{iteration.label} at {rate}/s: control messages seen: {unusual}")
    if iteration.profiled:
        if window.profile is not None and profile_to is not None:
            profile_to.with_suffix(".summary.txt").write_text(window.profile.text())
            result.profiles[f"{rate}/s"] = str(profile_to.with_suffix(".summary.txt"))
        return
    suffix = f"-{label}@{rate}" if label else f"@{rate}"
    at = f"{label}, {rate} ev/s" if label else f"{rate} ev/s"
    result.add(
        f"per_cpu{suffix}",
        f"deliveries per server CPU-s ({at})",
        "/CPU-s",
        delivery.per_cpu_s,
    )
    result.add(
        f"rate{suffix}",
        f"deliveries per second ({at})",
        "/s",
        delivery.deliveries / window.wall_s if window.wall_s else 0.0,
        better="",
    )
    result.add(f"cpu{suffix}", f"server CPU ({at})", "%", window.cpu_percent, better="")
    result.add(
        f"client_cpu{suffix}",
        f"subscribers' CPU, all processes ({at})",
        "%",
        100 * delivery.client_cpu_s / window.wall_s if window.wall_s else 0.0,
        better="",
    )
    result.add(
        f"sys{suffix}",
        f"kernel share of server CPU ({at})",
        "%",
        window.system_percent,
        better="",
    )
    for name, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("max", "max_ms")):
        result.add(
            f"{name}{suffix}",
            f"latency {name} ({at})",
            "ms",
            latency.summary_ms()[key],
            better="lower",
        )
    result.add_latency(f"{result.name} {at}", latency, delivery.timeline)
