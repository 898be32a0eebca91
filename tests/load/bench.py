"""What a scenario works with: ``Bench`` (starts Herald and generators), results, helpers.

A scenario is ``async def run(bench: Bench, result: ScenarioResult) -> None``. It starts what
it needs through ``bench`` (each start registers its own stop on the scenario's exit stack),
measures inside ``server.window()`` (server.py), and adds metrics and notes to ``result``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from tests.processes import HeraldProcess

from .control import GeneratorFailed, GeneratorProcess, Generators
from .histogram import Histogram, Timeline
from .meter import ProcessMeter
from .server import JWT_SECRET, PRODUCTION_SETTINGS, Server, Window, publisher_token

READY_WITHIN_S = 60.0


@dataclass
class Metric:
    """One figure of a scenario, measured once per run; the report shows the median."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    # "higher" or "lower" is better; "" when the figure is context, not a score.
    better: str = "higher"

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median if self.values else None,
            "values": self.values,
            "better": self.better,
        }


@dataclass
class ScenarioResult:
    """Everything one scenario measured, and what the report needs to explain it."""

    name: str
    description: str = ""
    metrics: dict[str, Metric] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    latency: dict[str, Histogram] = field(default_factory=dict)
    timelines: dict[str, Timeline] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)
    # Herald's /metrics counters at the end of the scenario (summed over its processes).
    server_metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    elapsed_s: float = 0.0

    def add(self, key: str, name: str, unit: str, value: float, better: str = "higher") -> None:
        metric = self.metrics.get(key)
        if metric is None:
            metric = self.metrics[key] = Metric(name, unit, better=better)
        metric.values.append(value)

    def add_latency(self, label: str, histogram: Histogram, timeline: Timeline | None) -> None:
        self.latency.setdefault(label, Histogram()).merge(histogram)
        if timeline is not None and label not in self.timelines:
            self.timelines[label] = timeline  # the first run's, for the plot

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def keep_profile(self, label: str, window: Window, profile_to: Path | None) -> None:
        """Write the summary of ``window``'s profile beside ``profile_to``, listed as ``label``."""
        if window.profile is not None and profile_to is not None:
            summary = profile_to.with_suffix(".summary.txt")
            summary.write_text(window.profile.text())
            self.profiles[label] = str(summary)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "metrics": {key: metric.to_json() for key, metric in self.metrics.items()},
            "latency_ms": {label: h.summary_ms() for label, h in self.latency.items()},
            "latency_histograms": {label: h.to_json() for label, h in self.latency.items()},
            "notes": self.notes,
            "herald_settings": self.settings,
            "runs": self.runs,
            "profiles": self.profiles,
            "herald_metrics": self.server_metrics,
            "error": self.error,
            "elapsed_s": self.elapsed_s,
        }


@dataclass(frozen=True)
class Iteration:
    index: int
    # A profiled iteration runs first and is left out of the figures (py-spy costs CPU).
    profiled: bool

    @property
    def label(self) -> str:
        return "profile" if self.profiled else f"run {self.index + 1}"


@dataclass
class Delivery:
    """What subscribers received in one measured window of publishing."""

    deliveries: int
    expected: int
    published: dict[str, Any]
    window: Window
    latency: Histogram
    timeline: Timeline
    controls: dict[str, int]
    client_cpu_s: float
    timed_out: bool
    # Connections the server had closed since the previous window, opened again before this.
    reopened: int

    @property
    def per_cpu_s(self) -> float:
        return self.deliveries / self.window.cpu_s if self.window.cpu_s else 0.0


class Bench:
    """Shared by all scenarios of one ``python -m tests.load`` invocation."""

    def __init__(
        self,
        bootstrap: str,
        out_dir: Path,
        quick: bool,
        runs: int,
        profile: bool,
        otlp_endpoint: str | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        # Where Herald sends its spans (--tracing); None: tracing off, as by default.
        self.otlp_endpoint = otlp_endpoint
        self.out_dir = out_dir
        self.logs = out_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.quick = quick
        self.runs = runs
        self.profile = profile
        self._names: dict[str, int] = {}
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        """A progress line, so a long run shows that it is moving."""
        print(f"[{time.monotonic() - self.started:6.1f}s]   {text}", flush=True)

    def pick(self, default: Any, quick: Any) -> Any:
        return quick if self.quick else default

    def _name(self, label: str) -> str:
        self._names[label] = self._names.get(label, 0) + 1
        return f"{label}-{self._names[label]}"

    def topic(self, label: str) -> str:
        return f"bench-{label}-{uuid.uuid4().hex[:8]}"

    def iterations(self) -> list[Iteration]:
        first = [Iteration(0, profiled=True)] if self.profile else []
        return first + [Iteration(i, profiled=False) for i in range(self.runs)]

    def profile_path(self, label: str) -> Path:
        folder = self.out_dir / "profiles"
        folder.mkdir(exist_ok=True)
        return folder / f"{label}.txt"

    async def herald(
        self,
        stack: AsyncExitStack,
        result: ScenarioResult,
        topics: list[str],
        workers: int = 1,
        /,
        **settings: str,
    ) -> Server:
        """Start Herald with production settings plus ``settings``; stopped with the stack.

        It exposes only ``topics``, so it neither reads back nor follows the topics other
        scenarios left on the same broker. ``workers`` > 1 runs ``herald serve --workers N``:
        a parent and N worker processes on one socket (the meter counts them all); it is
        positional-only, so ``**settings`` dicts of strings cannot be taken for it. Before it
        stops, its /metrics counters are added to ``result`` (lagging closes, deliveries by
        transport).
        """
        merged = {**PRODUCTION_SETTINGS, "topic_list": ",".join(topics), **settings}
        process_settings = {**merged, "jwt_secret": JWT_SECRET}
        process = HeraldProcess(
            self.bootstrap,
            self.logs / f"herald-{self._name(result.name)}.log",
            ["--workers", str(workers)] if workers > 1 else [],
            **process_settings,
        )
        if self.otlp_endpoint is not None:
            process.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.otlp_endpoint
            result.note(f"tracing on: spans exported to {self.otlp_endpoint}")
        process.start()
        stack.callback(process.stop)
        await process.wait_ready(READY_WITHIN_S)
        if workers > 1:
            await process.wait_positioned(workers, READY_WITHIN_S)
            result.note(
                f"herald serve --workers {workers}: server CPU and memory are the parent's "
                "and its workers' together; /metrics answers from one worker per connection, "
                "so herald_metrics in results.json are one worker's counters, not totals"
            )
        assert process.process is not None
        server = Server(process, ProcessMeter(process.process.pid), merged)
        result.settings = {**merged, "jwt_secret": "(generated)"}

        async def keep_metrics() -> None:
            with contextlib.suppress(httpx.HTTPError):
                for name, value in (await server.metrics()).items():
                    result.server_metrics[name] = result.server_metrics.get(name, 0) + value

        stack.push_async_callback(keep_metrics)
        return server

    async def spawn(
        self,
        stack: AsyncExitStack,
        label: str,
        module: str,
        arg_lists: list[list[str]],
        ready_within: float = 120.0,
    ) -> Generators:
        """Start one generator process per argument list, all at once; wait until all are ready."""
        processes = [
            GeneratorProcess(
                f"{module}[{index}]", module, args, self.logs / f"{self._name(label)}.log"
            )
            for index, args in enumerate(arg_lists)
        ]
        for process in processes:
            stack.push_async_callback(process.stop)
        readies = await asyncio.gather(*(p.start(ready_within) for p in processes))
        for process, ready in zip(processes, readies, strict=True):
            if ready.get("failed"):
                raise GeneratorFailed(
                    f"{process.name}: {ready['failed']} connections failed: {ready['failures']}"
                )
        return Generators(processes)

    async def deliver(
        self,
        server: Server,
        subscribers: Generators,
        expects: Callable[[int], list[int]],
        publisher: GeneratorProcess,
        steady: dict[str, Any],
        profile_to: Path | None = None,
    ) -> Delivery:
        """One window: publish at a steady rate; wait until every subscriber has it all.

        ``expects(accepted)`` says how many events each subscriber generator should receive
        once the publisher's ``accepted`` events are delivered.
        """
        measuring = await subscribers.call({"cmd": "measure"}, "measuring", 120)
        reopened = sum(int(m["reopened"]) for m in measuring)
        within_publish = float(steady["duration"]) + 60
        async with server.window(profile_to) as window:
            published = await publisher.call(
                {"cmd": "steady", **steady}, "published", within_publish
            )
            counts = expects(int(published["accepted"]))
            total = sum(counts)
            # Generous: at least 5 000 deliveries a second, whatever the server manages.
            within = 15 + total / 5000
            answers = await subscribers.call(
                [{"cmd": "drain", "expect": n, "within": within} for n in counts],
                "drained",
                within + 30,
            )
        latency = Histogram.merged(Histogram.from_json(a["latency"]) for a in answers)
        delivered = sum(int(a["events"]) for a in answers)
        self.say(
            f"{steady['rate']:g} events/s for {steady['duration']:g}s: {delivered}/{total} "
            f"deliveries, server {window.cpu_s:.1f} CPU-s in {window.wall_s:.1f}s "
            f"(machine: {window.machine_cores:.1f} cores busy)"
            + (f", {reopened} reconnected first" if reopened else "")
        )
        timeline = Timeline()
        controls: dict[str, int] = {}
        for answer in answers:
            timeline.merge(Timeline.from_json(answer["timeline"]))
            for name, count in answer["controls"].items():
                controls[name] = controls.get(name, 0) + count
        return Delivery(
            deliveries=delivered,
            expected=total,
            published=published,
            window=window,
            latency=latency,
            timeline=timeline,
            controls=controls,
            client_cpu_s=sum(float(a["cpu_s"]) for a in answers),
            timed_out=any(a["timed_out"] for a in answers),
            reopened=reopened,
        )


def split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as integers allow."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def spans(total: int, parts: int, start: int = 0) -> list[tuple[int, int]]:
    """``split``, each share with the number it starts at (the first: ``start``)."""
    shares = split(total, parts)
    return list(zip(itertools.accumulate(shares[:-1], initial=start), shares, strict=True))


async def seed_topic(server: Server, topic: str, events: int = 1) -> None:
    """Create ``topic`` by publishing ``events`` events, and wait until Herald delivers them.

    Afterwards the consumer is assigned the topic's partitions, so subscribers that connect
    next see live events at once.
    """
    async with asyncio.timeout(60):
        verify = server.process.verify
        async with connect(
            f"{server.process.ws_url}/v1/ws",
            subprotocols=[Subprotocol("herald.v1.json")],
            ssl=verify if isinstance(verify, ssl.SSLContext) else None,
        ) as ws:
            await ws.send(json.dumps({"op": "subscribe", "topic": topic}))
            while json.loads(await ws.recv()).get("op") != "subscribed":
                pass
            body = [{"data": {"ts": time.time(), "seq": -1 - i}} for i in range(events)]
            async with httpx.AsyncClient(
                base_url=server.base_url, timeout=30, verify=verify
            ) as client:
                response = await client.post(
                    f"/v1/topics/{topic}/events",
                    json=body,
                    headers={"Authorization": f"Bearer {publisher_token()}"},
                )
                response.raise_for_status()
            seen = 0
            while seen < events:
                if json.loads(await ws.recv()).get("op") == "event":
                    seen += 1
