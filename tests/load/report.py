"""The outputs of a benchmark run: the printed table, results.json, report.md, latency.png."""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.processes import ROOT

from .bench import Metric, ScenarioResult

PACKAGES = (
    "quart",
    "hypercorn",
    "werkzeug",
    "h11",
    "h2",
    "wsproto",
    "aiokafka",
    "sse-starlette",
    "msgpack",
    "uvloop",
    "websockets",
    "httpx",
    "matplotlib",
    "py-spy",
)


def machine_info(command: str, bootstrap_given: bool) -> dict[str, Any]:
    """The machine, versions and limits, so a reader can tell what the figures are of."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "command": command,
        "cwd": str(ROOT),
        "nproc": os.cpu_count(),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "kafka": _kafka_version(),
        "kafka_bootstrap": "HERALD_KAFKA_BOOTSTRAP (given)" if bootstrap_given else "local",
        "packages": versions,
        "git": _git(),
        "rlimit_nofile": {"soft": soft, "hard": hard},
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "herald_env": {k: v for k, v in os.environ.items() if k.startswith("HERALD_")},
    }


def _kafka_version() -> str | None:
    lib = ROOT / "deploy" / "kafka" / ".cache" / "lib"
    for jar in sorted(lib.glob("kafka-server-[0-9]*.jar")) + sorted(lib.glob("kafka_*.jar")):
        return jar.stem.rsplit("-", 1)[-1]
    return None


def _git() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "service"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return None
    return f"{head}{' (service/ modified)' if dirty else ''}" if head else None


def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "" and float(value).is_integer():
        return f"{value:.0f}"
    if unit == "ms":
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    if unit == "%":
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}".replace(",", " ")
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _rows(results: list[ScenarioResult]) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    for result in results:
        if result.error and not result.metrics:
            rows.append((result.name, f"FAILED: {result.error[:60]}", "", "", ""))
            continue
        for metric in result.metrics.values():
            rows.append((result.name, metric.name, *_cells(metric)))
        if result.error:
            rows.append((result.name, f"FAILED: {result.error[:60]}", "", "", ""))
    return rows


def _cells(metric: Metric) -> tuple[str, str, str]:
    values = metric.values
    spread = (
        f"{fmt(min(values), metric.unit)} - {fmt(max(values), metric.unit)}"
        if len(values) > 1
        else ""
    )
    return fmt(metric.median, metric.unit), spread, metric.unit


def table(results: list[ScenarioResult]) -> str:
    """The plain-text table printed at the end of a run."""
    header = ("scenario", "measurement", "median", "runs (min - max)", "unit")
    rows = [header, *_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in (2, 3) else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(results: list[ScenarioResult]) -> str:
    lines = [
        "| scenario | measurement | median | runs (min - max) | unit |",
        "|---|---|---:|---:|---|",
    ]
    lines += [f"| {' | '.join(row)} |" for row in _rows(results)]
    return "\n".join(lines)


def write_json(path: Path, info: dict[str, Any], results: list[ScenarioResult]) -> None:
    body = {"machine": info, "scenarios": [result.to_json() for result in results]}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")


def write_markdown(
    path: Path,
    info: dict[str, Any],
    results: list[ScenarioResult],
    elapsed_s: float,
    plot: Path | None,
) -> None:
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
    lines = [
        "# Herald benchmark",
        "",
        f"Command: `{info['command']}` (in `{info['cwd']}`), {elapsed_s / 60:.1f} minutes.",
        "",
        "## Machine",
        "",
        f"- {info['nproc']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB memory, "
        f"Linux {info['kernel']}",
        f"- Python {info['python']}; Kafka {info['kafka']} ({info['kafka_bootstrap']})",
        f"- Herald at git {info['git']}",
        f"- packages: {packages}",
        f"- open files: soft {info['rlimit_nofile']['soft']}, hard "
        f"{info['rlimit_nofile']['hard']} (generators and Herald run at the hard limit)",
        f"- load average at start: {' '.join(info['loadavg_at_start'])}",
        "",
        "Every figure is the median of the runs shown; server CPU is the Herald process's "
        "(with --workers, the parent's and its workers') user + system time from "
        "/proc/<pid>/stat over the measurement window. Load generators are separate processes "
        "on the same machine.",
        "",
        "## Results",
        "",
        markdown_table(results),
        "",
    ]
    if plot is not None:
        lines += [f"![latency]({plot.name})", ""]
    for result in results:
        lines += [f"## {result.name}", "", result.description, ""]
        if result.settings:
            settings = ", ".join(f"`HERALD_{k.upper()}={v}`" for k, v in result.settings.items())
            lines += [f"Herald settings (beyond the defaults): {settings}", ""]
        for label, histogram in result.latency.items():
            summary = histogram.summary_ms()
            lines.append(
                f"- latency {label}, all runs ({summary['count']:,} samples): "
                f"p50 {summary['p50_ms']:.1f} ms, p90 {summary['p90_ms']:.1f} ms, "
                f"p99 {summary['p99_ms']:.1f} ms, p99.9 {summary['p999_ms']:.1f} ms, "
                f"max {summary['max_ms']:.1f} ms"
            )
        lines += [f"- {note}" for note in result.notes]
        busy = [
            float(run["machine_busy_cores"]) for run in result.runs if "machine_busy_cores" in run
        ]
        if busy:
            lines.append(
                f"- the whole machine (Herald, generators, Kafka, anything else) kept "
                f"{min(busy):.2f} - {max(busy):.2f} of {info['nproc']} cores busy during the "
                "measurement windows"
            )
        shown = {
            name: value
            for name, value in result.server_metrics.items()
            if name.split("{")[0]
            in (
                "herald_events_published_total",
                "herald_records_consumed_total",
                "herald_deliveries_total",
                "herald_subscribers_lagging_total",
            )
        }
        if shown:
            counters = ", ".join(f"`{name}` {value:,.0f}" for name, value in shown.items())
            lines.append(f"- Herald's /metrics at the end (whole scenario): {counters}")
        for label, profile in result.profiles.items():
            lines += [f"- profile ({label}): `{profile}`"]
        if result.error:
            lines.append(f"- **failed**: {result.error}")
        lines += [f"- took {result.elapsed_s:.0f} s", ""]
    path.write_text("\n".join(lines))


def plot_latency(path: Path, results: list[ScenarioResult]) -> bool:
    """Latency distribution (all runs) and latency over the first run; False without matplotlib."""
    curves = [(label, h) for r in results for label, h in r.latency.items() if h.count]
    if not curves:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for label, histogram in curves:
        points = histogram.cumulative()
        # x: "nines" of the percentile, so p50, p90, p99, p99.9 are evenly spaced.
        floor = 1 / histogram.count
        xs = [-math.log10(max(1 - fraction, floor)) for _latency, fraction in points]
        ys = [latency * 1e3 for latency, _fraction in points]
        left.plot(xs, ys, label=label)
    left.set_xticks([0.301, 1, 2, 3, 4], ["50", "90", "99", "99.9", "99.99"])
    left.set_xlabel("percentile")
    left.set_ylabel("end-to-end latency (ms)")
    left.set_yscale("log")
    left.set_title("latency distribution (all runs)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    for result in results:
        for label, timeline in result.timelines.items():
            series = timeline.series()
            if series:
                right.plot(
                    [t for t, _m, _x in series], [m * 1e3 for _t, m, _x in series], label=label
                )
    right.set_xlabel("send time (s since the first event of the run)")
    right.set_ylabel("mean latency (ms)")
    right.set_yscale("log")
    right.set_title("latency over one run")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
