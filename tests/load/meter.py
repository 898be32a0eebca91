"""What the server process costs, read from the OS: CPU time, resident memory, profiles.

CPU and memory come from ``/proc/<pid>/stat`` and ``/proc/<pid>/statm`` (Linux; the kernel
counts CPU time in clock ticks, 10 ms here), summed over the server process and its live
children (the workers of ``herald serve --workers N``). Profiles come from py-spy, attached to
the running server only during a measurement window.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
T = TypeVar("T")


class ProcessMeter:
    """CPU seconds (user + system) and resident memory of one process and its live children.

    ``herald serve --workers N`` is a parent that forks N workers: they do the work. A child
    that ends between two readings takes its CPU time out of the later one (the kernel moves
    it to the parent's cutime, which is not read): a window spanning that can read low.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def pids(self) -> list[int]:
        """The process, then its children alive now."""
        return [self.pid, *children(self.pid)]

    def _each(self, read: Callable[[int], T]) -> dict[int, T]:
        """``read(pid)`` of the process, then of each live child.

        A child that ended since it was listed is left out; the process itself must be there.
        """
        readings = {self.pid: read(self.pid)}
        for pid in children(self.pid):
            with contextlib.suppress(OSError):
                readings[pid] = read(pid)
        return readings

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds so far."""
        ticks = self._each(_cpu_ticks).values()
        return sum(u for u, _ in ticks) / CLOCK_TICKS, sum(s for _, s in ticks) / CLOCK_TICKS

    def cpu_s(self) -> float:
        return sum(self.cpu_times())

    def rss_bytes(self) -> int:
        return sum(self._each(rss_pages).values()) * PAGE_BYTES

    def open_files_by_process(self) -> dict[int, int]:
        """Open descriptors (connections among them) per process: the parent, then each child."""
        return self._each(lambda pid: len(os.listdir(f"/proc/{pid}/fd")))

    def open_files(self) -> int:
        return sum(self.open_files_by_process().values())


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after "pid (comm)": state is the first (field 3)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: the fields follow its last ")".
    return stat[stat.rindex(")") + 2 :].split()


def _cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime): fields 14 and 15 of ``/proc/<pid>/stat`` (proc(5)), in clock ticks."""
    fields = _stat(pid)
    return int(fields[11]), int(fields[12])


def rss_pages(pid: int) -> int:
    """Resident pages of ``pid`` alone (not its children)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1])


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (field 4 of each ``/proc/<pid>/stat``).

    ``/proc/<pid>/task/<tid>/children`` needs a kernel built with CONFIG_PROC_CHILDREN (this
    machine's is not); scanning a few hundred small files takes milliseconds, done at the edges
    of a window only.
    """
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if int(_stat(int(entry))[1]) == pid:
                    found.append(int(entry))
    return sorted(found)


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

    def __init__(self, pid: int, output: Path, rate: int = 100, subprocesses: bool = False) -> None:
        self.pid = pid
        self.output = output
        self.rate = rate
        # Sample the children too (the workers of ``herald serve --workers N``).
        self.subprocesses = subprocesses
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
                *(["--subprocesses"] if self.subprocesses else []),
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
