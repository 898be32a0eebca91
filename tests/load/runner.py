"""``python -m tests.load [scenario ...] [--runs N] [--quick] [--profile]``: the benchmark.

Starts a local Kafka on free ports (unless ``HERALD_KAFKA_BOOTSTRAP`` names one), a fresh
Herald process per scenario, and load generators as separate processes; prints a table and
writes results.json, report.md and latency.png under results/bench-<time>/. Everything it
started is stopped again, also after a failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import signal
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

from tests.otlp_receiver import otlp_receiver
from tests.processes import ROOT, KafkaBroker

from .bench import Bench, ScenarioResult
from .control import raise_fd_limit
from .meter import py_spy
from .report import fmt, machine_info, plot_latency, table, write_json, write_markdown
from .scenarios import SCENARIOS

RESULTS = ROOT / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.load",
        description="Herald benchmarks: " + ", ".join(SCENARIOS),
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="scenario", help="scenarios to run (default: all)"
    )
    parser.add_argument("--runs", type=int, help="measured runs per figure (default 3; 1 quick)")
    parser.add_argument("--quick", action="store_true", help="one shorter run of each")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record a py-spy profile of Herald in an extra, unmeasured run of each window",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="run Herald with OpenTelemetry tracing on, exporting to a loopback OTLP receiver",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    args.scenarios = args.scenarios or list(SCENARIOS)
    args.runs = args.runs or (1 if args.quick else 3)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.profile and py_spy() is None:
        parser.error("--profile needs py-spy: pip install -e '.[bench]'")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.monotonic()
    # Herald and the generators inherit this: idle holds ~10 000 sockets in one process.
    raise_fd_limit()
    out_dir = args.out / f"bench-{datetime.now():%Y%m%d-%H%M%S}"
    out_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "-m", "tests.load", *argv])
    bootstrap = os.environ.get("HERALD_KAFKA_BOOTSTRAP")
    info = machine_info(command, bootstrap_given=bool(bootstrap))
    results: list[ScenarioResult] = []
    interrupted = False

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    broker: KafkaBroker | None = None
    kafka_dir: tempfile.TemporaryDirectory[str] | None = None
    traces = contextlib.ExitStack()
    try:
        if not bootstrap:
            kafka_dir = tempfile.TemporaryDirectory(prefix="herald-bench-kafka-")
            broker = KafkaBroker(Path(kafka_dir.name), short_lived=False)
            _say(started, f"starting Kafka on {broker.bootstrap}")
            broker.up()
            bootstrap = broker.bootstrap
        # A sink: Herald encodes and sends every span; nobody here decodes them.
        otlp = traces.enter_context(otlp_receiver(keep=False)).endpoint if args.tracing else None
        bench = Bench(bootstrap, out_dir, args.quick, args.runs, args.profile, otlp)
        bench.started = started
        asyncio.run(_run_scenarios(bench, args.scenarios, results, started))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
        print("\ninterrupted: stopping everything", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        traces.close()
        if broker is not None:
            broker.down()
        if kafka_dir is not None:
            kafka_dir.cleanup()
    elapsed = time.monotonic() - started
    if results:
        plot = out_dir / "latency.png"
        has_plot = plot_latency(plot, results)
        if not has_plot and any(result.latency for result in results):
            print("no latency.png: matplotlib is missing (pip install -e '.[bench]')")
        write_json(out_dir / "results.json", info, results)
        write_markdown(out_dir / "report.md", info, results, elapsed, plot if has_plot else None)
        print()
        print(table(results))
        print()
        shown = out_dir.relative_to(ROOT) if out_dir.is_relative_to(ROOT) else out_dir
        print(f"{elapsed / 60:.1f} minutes; results in {shown}/")
    failed = any(result.error for result in results)
    return 130 if interrupted else 1 if failed else 0


async def _run_scenarios(
    bench: Bench, names: list[str], results: list[ScenarioResult], started: float
) -> None:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    for name in names:
        scenario, description = SCENARIOS[name]
        result = ScenarioResult(name, description)
        results.append(result)
        _say(started, f"{name} ...")
        began = time.monotonic()
        try:
            await scenario(bench, result)
        except asyncio.CancelledError:
            result.error = "interrupted"
            raise
        except Exception as exc:  # noqa: BLE001 - one failed scenario must not lose the others
            result.error = f"{type(exc).__name__}: {exc}"
            (bench.logs / f"{name}-error.txt").write_text(traceback.format_exc())
        finally:
            result.elapsed_s = time.monotonic() - began
        headline = next(iter(result.metrics.values()), None)
        status = (
            f"FAILED ({result.error})"
            if result.error
            else f"{headline.name} = {fmt(headline.median, headline.unit)}{headline.unit}"
            if headline
            else "done"
        )
        _say(started, f"{name}: {status} ({result.elapsed_s:.0f}s)")


def _say(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {text}", flush=True)
