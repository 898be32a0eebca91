"""How the runner drives its load generators: JSON lines on the child's stdin and stdout.

A generator starts, connects what it was told to on its command line, prints
``{"event": "ready", ...}`` and then answers commands (``{"cmd": ...}``) one at a time, each
with one ``{"event": ...}`` line. It exits on ``quit``, when its stdin closes (the runner is
gone), or when its lifetime is over: nothing outlives a crashed runner for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# The longest any generator lives, whatever happens to the runner.
MAX_LIFETIME_S = 1800.0


class GeneratorFailed(RuntimeError):
    """A generator reported an error, exited, or did not answer in time."""


# -- the generator side ---------------------------------------------------------------------


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def client_tls(ca_file: str | None) -> ssl.SSLContext | None:
    """A client TLS context trusting ``ca_file`` (a server's test CA); None: plain TCP."""
    return None if ca_file is None else ssl.create_default_context(cafile=ca_file)


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def serve_commands(handlers: Mapping[str, Handler], lifetime_s: float) -> None:
    """Answer the runner's commands until ``quit``, end of stdin, or ``lifetime_s``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        async with asyncio.timeout(lifetime_s):
            while line := await reader.readline():
                command = json.loads(line)
                name = command.get("cmd")
                if name == "quit":
                    emit({"event": "bye"})
                    return
                handler = handlers.get(name)
                if handler is None:
                    emit({"event": "error", "error": f"unknown command {name!r}"})
                    continue
                try:
                    emit(await handler(command))
                except Exception as exc:  # noqa: BLE001 - reported to the runner, which stops
                    emit({"event": "error", "error": f"{name}: {exc!r}"})
    except TimeoutError:
        emit({"event": "error", "error": f"lifetime of {lifetime_s:.0f}s over"})


def run_generator(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Entry point of a generator process: more open files, uvloop when installed."""
    raise_fd_limit()
    # The runner stops its generators; a Ctrl-C meant for it must not kill them mid-report.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def uses_uvloop() -> bool:
    return type(asyncio.get_running_loop()).__module__.startswith("uvloop")


# -- the runner side ------------------------------------------------------------------------


class GeneratorProcess:
    """One generator: ``python -m tests.load.<module> <args>``, its own session and log."""

    def __init__(self, name: str, module: str, args: list[str], log_path: Path) -> None:
        self.name = name
        self.module = module
        self.args = args
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}

    async def start(self, ready_within: float) -> dict[str, Any]:
        """Start the process and wait for its ``ready`` line."""
        self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"tests.load.{self.module}",
            *self.args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            limit=1 << 24,
            # Its own session: Ctrl-C reaches the runner only, which then stops everything.
            start_new_session=True,
        )
        self.ready = await self.receive("ready", ready_within)
        return self.ready

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def receive(self, event: str, within: float) -> dict[str, Any]:
        process = self.process
        assert process is not None and process.stdout is not None
        try:
            async with asyncio.timeout(within):
                while True:
                    line = await process.stdout.readline()
                    if not line:
                        await process.wait()
                        raise GeneratorFailed(
                            f"{self.name} exited ({process.returncode}): {self.log_tail()}"
                        )
                    try:
                        message: dict[str, Any] = json.loads(line)
                    except ValueError:
                        continue
                    if message.get("event") == "error":
                        raise GeneratorFailed(f"{self.name}: {message.get('error')}")
                    if message.get("event") == event:
                        return message
        except TimeoutError:
            raise GeneratorFailed(f"{self.name}: no {event!r} within {within:.0f}s") from None

    async def send(self, command: dict[str, Any]) -> None:
        process = self.process
        assert process is not None and process.stdin is not None
        process.stdin.write(json.dumps(command).encode() + b"\n")
        await process.stdin.drain()

    async def call(self, command: dict[str, Any], event: str, within: float) -> dict[str, Any]:
        await self.send(command)
        return await self.receive(event, within)

    async def stop(self) -> None:
        """Ask it to quit; terminate, then kill, whatever does not end in time."""
        process = self.process
        if process is None:
            return
        # One still connecting reads no commands: terminate it at once.
        if process.returncode is None and self.ready:
            with contextlib.suppress(TimeoutError, OSError):
                await self.send({"cmd": "quit"})
                if process.stdin is not None:
                    process.stdin.close()
                await asyncio.wait_for(process.wait(), 10)
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self._log.close()

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


class Generators:
    """Several generator processes of one kind, commanded together."""

    def __init__(self, processes: list[GeneratorProcess]) -> None:
        self.processes = processes

    def __len__(self) -> int:
        return len(self.processes)

    async def call(
        self, commands: dict[str, Any] | list[dict[str, Any]], event: str, within: float
    ) -> list[dict[str, Any]]:
        """Send each process its command (one for all, or one each); gather the answers."""
        if isinstance(commands, dict):
            commands = [commands] * len(self.processes)
        return list(
            await asyncio.gather(
                *(
                    process.call(command, event, within)
                    for process, command in zip(self.processes, commands, strict=True)
                )
            )
        )
