"""The Herald under test: its process and settings, measurement windows, its /metrics."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from tests.processes import HeraldProcess

from .meter import ProcessMeter, Profiler, ProfileSummary, machine_busy_s

# Production-like: the defaults of service/config.py, except what a scenario must change.
# (tests.processes.HeraldProcess lowers the topic refresh for the tests; put it back.)
PRODUCTION_SETTINGS = {
    "log_level": "INFO",
    # Subscribers read without a token: the benchmark topics are declared public.
    "public_topics": "bench-.*",
    "topic_refresh_s": "2.0",
    # All benchmark clients come from 127.0.0.1 and all publishers use one token: the
    # per-address and per-token limits (429) would measure themselves, not Herald.
    "max_connections": "50000",
    "max_connections_per_address": "50000",
    "publish_rate_per_address": "1e9",
    "publish_burst_per_address": "1000000000",
    "publish_rate_per_token": "1e9",
    "publish_burst_per_token": "1000000000",
    "topic_creations_per_hour": "1000000",
}
# Publishers authenticate as backends do, with an HS256 token (readers use public topics).
JWT_SECRET = secrets.token_urlsafe(32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def publisher_token(lifetime_s: float = 3 * 3600) -> str:
    """An HS256 JWT signed with JWT_SECRET that may publish to every benchmark topic."""
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "sub": "bench-publisher",
        "exp": int(time.time() + lifetime_s),
        "herald": {"publish": ["bench-*"], "subscribe": ["bench-*"], "create": ["bench-*"]},
    }
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = hmac.new(JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


class Window:
    """A measurement: the server's CPU seconds and the wall time between enter and exit."""

    def __init__(self, meter: ProcessMeter, profile_to: Path | None) -> None:
        self.meter = meter
        self.profile_to = profile_to
        self.cpu_s = 0.0
        self.system_s = 0.0
        # Every process of the machine: Herald, the generators, Kafka and anything else.
        self.machine_s = 0.0
        self.wall_s = 0.0
        self.profile: ProfileSummary | None = None
        self._profiler: Profiler | None = None

    async def __aenter__(self) -> Window:
        if self.profile_to is not None:
            workers = len(self.meter.pids()) > 1
            self._profiler = Profiler(self.meter.pid, self.profile_to, subprocesses=workers)
            if self._profiler.start():
                await asyncio.sleep(0.5)  # py-spy needs a moment to attach
            else:
                self._profiler = None
        self._cpu0 = self.meter.cpu_times()
        self._busy0 = machine_busy_s()
        self._t0 = time.monotonic()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.wall_s = time.monotonic() - self._t0
        self.machine_s = machine_busy_s() - self._busy0
        user, system = self.meter.cpu_times()
        self.cpu_s = user + system - sum(self._cpu0)
        self.system_s = system - self._cpu0[1]
        if self._profiler is not None:
            self.profile = await asyncio.to_thread(self._profiler.stop)

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def machine_cores(self) -> float:
        """How many cores the whole machine kept busy on average during the window."""
        return self.machine_s / self.wall_s if self.wall_s else 0.0

    @property
    def system_percent(self) -> float:
        """The kernel's share of the server's CPU time (socket writes, on loopback)."""
        return 100 * self.system_s / self.cpu_s if self.cpu_s else 0.0


@dataclass
class Server:
    """A Herald process under test."""

    process: HeraldProcess
    meter: ProcessMeter
    settings: dict[str, str]

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def base_url(self) -> str:
        return self.process.base_url

    def window(self, profile_to: Path | None = None) -> Window:
        return Window(self.meter, profile_to)

    def client_args(self) -> list[str]:
        """Where a generator reaches this server: its port, and with HTTPS the CA to trust."""
        ca_file = self.settings.get("tls_cert")
        return ["--port", str(self.port), *(["--ca-file", ca_file] if ca_file else [])]

    def publisher_args(self) -> list[str]:
        """Command-line arguments of a gen_http process that publishes to this server."""
        return [*self.client_args(), "--token", publisher_token()]

    async def metrics(self) -> dict[str, float]:
        """Herald's own counters from /metrics (``herald_*`` samples, labels kept in the name)."""
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=10, verify=self.process.verify
        ) as client:
            response = await client.get("/metrics")
            response.raise_for_status()
        samples: dict[str, float] = {}
        for line in response.text.splitlines():
            if line.startswith("herald_") and "_created" not in line.split(" ", 1)[0]:
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    async def wait_consumed(self, at_least: float, within: float) -> None:
        """Wait until Herald has read ``at_least`` records from Kafka in all."""
        await self.wait_metric("herald_records_consumed_total", at_least, within)

    async def wait_metric(self, name: str, at_least: float, within: float) -> None:
        """Wait until Herald's ``name`` sample reaches ``at_least``.

        Another process: there is no event to await, so poll its /metrics.
        """
        async with asyncio.timeout(within):
            while True:
                if (await self.metrics()).get(name, 0) >= at_least:
                    return
                await asyncio.sleep(0.1)
