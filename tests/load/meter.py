"""What the server process costs, read from the OS: CPU time, resident memory, profiles.

CPU and memory come from ``/proc/<pid>/stat`` and ``/proc/<pid>/statm`` (Linux; the kernel
counts CPU time in clock ticks, 10 ms here). Profiles come from py-spy, attached to the running
server only during a measurement window.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class ProcessMeter:
    """CPU seconds (user + system) and resident memory of one process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # Fields after "pid (comm)": state is field 3, utime 14 and stime 15 (proc(5)).
        fields = stat[stat.rindex(")") + 2 :].split()
        return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS

    def cpu_s(self) -> float:
        return sum(self.cpu_times())

    def rss_bytes(self) -> int:
        return int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * PAGE_BYTES

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


def machine_busy_s() -> float:
    """CPU seconds all processes of the machine spent busy so far (every core counted)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class ProfileSummary:
    """Where the sampled CPU time went: by leaf function, by function on the stack, by package."""

    samples: int = 0
    self_time: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    by_package: Counter[str] = field(default_factory=Counter)

    def text(self, top: int = 25) -> str:
        if not self.samples:
            return "(no samples)\n"
        lines = [f"{self.samples} samples (the process was on CPU; idle waits excluded)", ""]
        for title, counter in (
            ("self time by package", self.by_package),
            ("self time by function", self.self_time),
            ("inclusive time by function", self.inclusive),
        ):
            lines.append(f"## {title}")
            # Frames on every stack (the event loop, main) say nothing: leave them out.
            ranked = [(n, c) for n, c in counter.most_common() if c < 0.995 * self.samples]
            for name, count in ranked[:top]:
                lines.append(f"{100 * count / self.samples:6.1f}%  {name}")
            lines.append("")
        return "\n".join(lines)


_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def frame_name(frame: str) -> tuple[str, str]:
    """(``function (short file)``, package) for one py-spy frame ``function (file:line)``."""
    match = _FRAME.match(frame)
    if match is None:
        return frame, "other"
    path = match["file"]
    package = _package(path)
    short = "/".join(path.split("/")[-2:])
    return f"{match['function']} ({short})", package


def _package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/service/" in path or path.startswith("service/"):
        return "service/" + path.split("service/", 1)[1].removesuffix(".py")
    if path.startswith("<frozen "):
        return "stdlib:" + path.removeprefix("<frozen ").rstrip(">")
    if "/lib/python" in path:
        # .../lib/python3.11/asyncio/events.py -> asyncio; .../lib/python3.11/ssl.py -> ssl
        rest = path.split("/lib/python", 1)[1].split("/", 1)[-1]
        return "stdlib:" + rest.split("/", 1)[0].removesuffix(".py")
    return "other"


def summarize(raw: Path) -> ProfileSummary:
    """Read py-spy's ``raw`` (collapsed stacks) output: ``frame;frame;... count`` per line."""
    summary = ProfileSummary()
    if not raw.exists():
        return summary
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(frame) for frame in stack.split(";") if "(" in frame]
        # An executor thread waiting for work is idle, though py-spy may not see it so.
        if not frames or frames[-1][0] == "_worker (futures/thread.py)":
            continue
        summary.samples += count
        leaf, package = frames[-1]
        summary.self_time[leaf] += count
        summary.by_package[package] += count
        for name in {name for name, _package in frames}:
            summary.inclusive[name] += count
    return summary


class Profiler:
    """py-spy recording one process until stopped.

    py-spy pauses the process for each sample (consistent stacks); at 100 samples a second
    that costs it about 1 %. Time in a system call counts for the Python frame making it.
    """

    def __init__(self, pid: int, output: Path, rate: int = 100) -> None:
        self.pid = pid
        self.output = output
        self.rate = rate
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        binary = py_spy()
        if binary is None:
            return False
        self._log = self.output.with_suffix(".log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--full-filenames",
                "--output",
                str(self.output),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return True

    def stop(self) -> ProfileSummary:
        process = self.process
        if process is None:
            return ProfileSummary()
        # py-spy writes its output when interrupted, as after Ctrl-C.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._log.close()
        self.process = None
        return summarize(self.output)
