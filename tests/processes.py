"""Real processes for the tests: Kafka brokers from deploy/kafka and Herald servers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from .certificates import Certificates, make_certificates

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"
# The tests' brokers live seconds to minutes: compiled by C1 only, each starts on half the
# CPU (the suite starts several at once on two cores), fast enough for what they carry.
KAFKA_TEST_ENV = {"KAFKA_JVM_OPTS": os.environ.get("KAFKA_JVM_OPTS", "-XX:TieredStopAtLevel=1")}
CLUSTER_SCRIPT = ROOT / "deploy" / "kafka" / "cluster.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open while choosing)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def run_script(script: Path, *args: str, env: dict[str, str]) -> None:
    subprocess.run(["bash", str(script), *args], env=env, check=True)


class KafkaBroker:
    """One local KRaft node started through deploy/kafka/kafka.sh on free loopback ports."""

    def __init__(self, data_dir: Path, short_lived: bool = True) -> None:
        # Chosen together: two sockets closed one after the other may get the same port.
        self.port, self.controller_port = free_ports(2)
        self.data_dir = data_dir
        self.bootstrap = f"127.0.0.1:{self.port}"
        # A benchmark's broker (not short-lived) runs as `make run` starts it.
        self._jvm = KAFKA_TEST_ENV if short_lived else {}

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self._jvm,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_DATA_DIR": str(self.data_dir),
        }

    def up(self) -> None:
        run_script(KAFKA_SCRIPT, "up", env=self._env())

    def down(self) -> None:
        run_script(KAFKA_SCRIPT, "down", env=self._env())

    def discard(self) -> None:
        """Stop at once (SIGKILL): for teardown, when the data goes next."""
        run_script(KAFKA_SCRIPT, "discard", env=self._env())


class KafkaCluster:
    """Three local KRaft nodes (ids 1, 2, 3) through deploy/kafka/cluster.sh on free ports."""

    NODES = (1, 2, 3)

    def __init__(self, data_dir: Path) -> None:
        # Broker and controller port of node 1, then of node 2, then of node 3.
        self.ports = free_ports(2 * len(self.NODES))
        self.data_dir = data_dir
        self.bootstrap = ",".join(f"127.0.0.1:{port}" for port in self.ports[::2])

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            **KAFKA_TEST_ENV,
            "KAFKA_CLUSTER_DIR": str(self.data_dir),
            "KAFKA_CLUSTER_PORTS": ",".join(map(str, self.ports)),
        }

    def up(self) -> None:
        run_script(CLUSTER_SCRIPT, "up", env=self._env())

    def down(self) -> None:
        run_script(CLUSTER_SCRIPT, "down", env=self._env())

    def discard(self) -> None:
        """Stop at once (SIGKILL): for teardown, when the data goes next."""
        run_script(CLUSTER_SCRIPT, "discard", env=self._env())

    def _pid(self, node: int) -> int:
        return int((self.data_dir / f"node-{node}" / "kafka.pid").read_text())

    def kill(self, node: int) -> None:
        """SIGKILL one node: no controlled shutdown, no hand-over of its leaderships."""
        os.kill(self._pid(node), signal.SIGKILL)

    def start(self, node: int, within: float = 30.0) -> None:
        """Start a killed node again; blocks until it is ready (run it in a thread)."""
        # Until its parent reaps it, a killed JVM still answers `kill -0`: wait for that.
        pid, deadline = self._pid(node), time.monotonic() + within
        while _exists(pid):
            assert time.monotonic() < deadline, f"node {node} (pid {pid}) does not go away"
            time.sleep(0.05)
        run_script(CLUSTER_SCRIPT, "up", str(node), env=self._env())

    async def leader(self, topic: str, partition: int) -> int:
        """The id of the node leading ``topic``'s ``partition`` now (-1 while none does)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
        finally:
            await admin.close()
        leaders = {p["partition"]: p["leader"] for p in described["partitions"]}
        return int(leaders.get(partition, -1))


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# What service/consume.py logs once a process's consumer is positioned at the live head.
POSITIONED = "consumer: positioned at the live head"


class HeraldProcess:
    """``python -m service serve [args]`` on a free loopback port, stopped with SIGTERM."""

    # ``args`` is positional-only: ``**settings`` dicts of strings cannot be taken for it.
    def __init__(
        self, bootstrap: str, log_path: Path, args: list[str] | None = None, /, **settings: str
    ) -> None:
        self.port = free_port()
        # With a certificate: HTTPS, trusted by the process's clients (the test's own CA
        # travels in the certificate file). HTTP/3, where it is served: ``quic_url``.
        secure = "s" if "tls_cert" in settings else ""
        self.base_url = f"http{secure}://127.0.0.1:{self.port}"
        self.ws_url = f"ws{secure}://127.0.0.1:{self.port}"
        self.verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=settings["tls_cert"]) if secure else True
        )
        self.quic_url = ""
        self.log_path = log_path
        self.env = {
            **os.environ,
            "HERALD_BIND": f"127.0.0.1:{self.port}",
            "HERALD_KAFKA_BOOTSTRAP": bootstrap,
            "HERALD_TOPIC_REFRESH_S": "0.3",
            # Most tests are about delivery, not access: they read and publish without a
            # token. The security tests set their own public_topics and publish_open="false".
            "HERALD_PUBLIC_TOPICS": ".*",
            "HERALD_PUBLISH_OPEN": "true",
            # Load and fault tests publish fast from one address; the limit tests set these.
            "HERALD_PUBLISH_RATE_PER_ADDRESS": "1000000",
            "HERALD_PUBLISH_BURST_PER_ADDRESS": "1000000",
            # Every test makes topics of its own, all from one address.
            "HERALD_TOPIC_CREATIONS_PER_HOUR": "1000000",
            **{f"HERALD_{name.upper()}": value for name, value in settings.items()},
        }
        # Command-line arguments after ``serve``, such as ``["--workers", "2"]``.
        self.args = args or []
        self.process: subprocess.Popen[bytes] | None = None

    # What runs, where and as whom: the source tree's Herald as this user, unless a subclass
    # (an installed wheel, tests/deploy) says otherwise.
    cwd: Path = ROOT
    uid: int | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "service", "serve", *self.args]

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            user=self.uid,
            group=self.uid,
            extra_groups=None if self.uid is None else [],
        )

    # A busy 2-core machine has been seen to take over 30 s to start one (Kafka included).
    async def wait_ready(self, within: float = 60.0) -> None:
        await self.wait_readiness(True, within)

    async def wait_positioned(self, processes: int = 1, within: float = 60.0) -> None:
        """Wait until ``processes`` (its workers, with --workers) have logged that their
        consumer reached Kafka's head.

        /readyz cannot tell for workers: a kept-alive connection asks the same worker every
        time, and a worker still starting accepts no connection at all.
        """
        async with asyncio.timeout(within):
            while self.log_path.read_text(errors="replace").count(POSITIONED) < processes:
                assert self.process is not None and self.process.poll() is None, self.log()
                await asyncio.sleep(0.1)

    async def wait_readiness(self, ready: bool, within: float = 60.0) -> None:
        """Poll /readyz until it says ``ready`` (another process: there is no event to await)."""
        async with httpx.AsyncClient(base_url=self.base_url, verify=self.verify) as client:
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


@dataclass
class QuicHerald:
    """A Herald serving HTTPS and HTTP/3 (``process.quic_url``), with the certificates its
    clients trust."""

    process: HeraldProcess
    certificates: Certificates


def quic_herald(
    bootstrap: str, directory: Path, args: list[str] | None = None, /, **settings: str
) -> QuicHerald:
    """A HeraldProcess (not started) with a certificate of a CA made for it, and QUIC on the
    same port number as TCP: a browser told to force QUIC for an origin goes to its port."""
    certificates = make_certificates(directory / "tls")
    process = HeraldProcess(
        bootstrap,
        directory / "herald.log",
        args,
        tls_cert=str(certificates.server_cert),
        tls_key=str(certificates.server_key),
        # Hypercorn's QUIC server ends only once a datagram comes or the grace is over.
        shutdown_grace_s="0.3",
        **settings,
    )
    process.env["HERALD_QUIC_BIND"] = f"127.0.0.1:{process.port}"
    process.quic_url = f"https://127.0.0.1:{process.port}"
    return QuicHerald(process, certificates)


P = TypeVar("P", bound=HeraldProcess)


@asynccontextmanager
async def serving(server: P) -> AsyncIterator[P]:
    """``server`` started and ready for the block, and stopped after it however it ends."""
    server.start()
    try:
        await server.wait_ready()
        yield server
    finally:
        server.stop()


class Proxy:
    """A proxy from deploy/ (its script's ``up``/``down``) on a free port before ``origins``."""

    script: Path
    scheme: str
    name: str

    def __init__(self, work_dir: Path) -> None:
        self.port = free_port()
        self.base_url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.ws_url = f"{self.scheme.replace('http', 'ws')}://127.0.0.1:{self.port}"
        self.work_dir = work_dir

    def _env(self, origins: list[HeraldProcess] | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            f"{self.name}_PORT": str(self.port),
            f"{self.name}_DIR": str(self.work_dir),
        }
        if origins:
            env["PROXY_ORIGINS"] = ",".join(f"127.0.0.1:{origin.port}" for origin in origins)
        return env

    def up(self, origins: list[HeraldProcess]) -> None:
        run_script(self.script, "up", env=self._env(origins))

    def down(self) -> None:
        run_script(self.script, "down", env=self._env())


class Varnish(Proxy):
    """Varnish (deploy/varnish): the CDN stand-in, caching by the origin's headers."""

    script = ROOT / "deploy" / "varnish" / "varnish.sh"
    scheme = "http"
    name = "VARNISH"

    def counter(self, name: str) -> int:
        """One of varnishstat's counters, such as ``MAIN.busy_sleep``."""
        out = subprocess.run(
            ["bash", str(self.script), "stat"],
            env=self._env(),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0] == name:
                return int(fields[1])
        raise KeyError(name)


class Nginx(Proxy):
    """nginx (deploy/nginx): TLS and HTTP/2 for clients, several Herald upstreams."""

    script = ROOT / "deploy" / "nginx" / "nginx.sh"
    scheme = "https"
    name = "NGINX"

    @property
    def certificate(self) -> Path:
        """The self-signed certificate nginx.sh made: clients trust exactly this one."""
        return self.work_dir / "tls.crt"
