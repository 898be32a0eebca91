"""Real processes for the tests: a Kafka broker from deploy/kafka and Herald servers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol

import httpx

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class KafkaBroker:
    """One local KRaft node started through deploy/kafka/kafka.sh on free loopback ports."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.controller_port = free_port()
        self.data_dir = data_dir
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_DATA_DIR": str(self.data_dir),
        }

    def up(self) -> None:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "up"], env=self._env(), check=True)

    def down(self) -> None:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "down"], env=self._env(), check=True)


class HeraldProcess:
    """``python -m service serve`` on a free loopback port, stopped with SIGTERM."""

    def __init__(self, bootstrap: str, log_path: Path, **settings: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "HERALD_BIND": f"127.0.0.1:{self.port}",
            "HERALD_KAFKA_BOOTSTRAP": bootstrap,
            "HERALD_TOPIC_REFRESH_S": "0.3",
            **{f"HERALD_{name.upper()}": value for name, value in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, within: float = 30.0) -> None:
        await self.wait_readiness(True, within)

    async def wait_readiness(self, ready: bool, within: float = 30.0) -> None:
        """Poll /readyz until it says ``ready`` (another process: there is no event to await)."""
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            async with asyncio.timeout(within):
                while True:
                    assert self.process is not None and self.process.poll() is None, self.log()
                    try:
                        response = await client.get("/readyz")
                        if (response.status_code == 200) == ready:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


class StartServer(Protocol):
    """Starts a Herald process with ``HERALD_*`` settings given as keyword arguments."""

    def __call__(self, **settings: str) -> Awaitable[HeraldProcess]: ...
