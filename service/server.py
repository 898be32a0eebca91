"""Serving the app with Hypercorn; SIGTERM lets every stream say goodbye before it ends.

``serve_workers`` runs several such processes on one listening socket that they inherit
from a parent, which forwards SIGTERM/SIGINT to them and waits for them to end. With
HTTP/3 one of them, the first, serves QUIC too: see ``serve_workers``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import cast

import uvloop
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework

from .app import create_app
from .collector import COLLECTOR
from .config import Settings
from .tracing import Tracing
from .transports.ws_extensions import decline_compression

log = logging.getLogger(__name__)


def hypercorn_config(
    settings: Settings, listen_fd: int | None = None, quic_fd: int | None = None
) -> Config:
    # No compressed WebSocket frames: each could inflate to far more than any size limit.
    decline_compression()
    config = Config()
    config.bind = [settings.bind if listen_fd is None else f"fd://{listen_fd}"]
    config.accesslog = None
    # Hypercorn's own messages through Herald's logging (its format, JSON included), instead
    # of a second handler of Hypercorn's that would print each of them again on stderr.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = settings.shutdown_grace_s
    # Quart queues inbound WebSocket messages without bound: cap each one's size at least.
    # The app enforces HERALD_MAX_BODY_BYTES itself (close 1009); Hypercorn's own cap sits
    # above it because Hypercorn 0.18 does not close promptly once its cap is hit and the
    # client sends another frame (its buffer is not cleared after FrameTooLargeError).
    config.websocket_max_message_size = 2 * settings.max_body_bytes + 64 * 1024
    # Inbound WebSocket messages wait here for the app: a few at most, since the app keeps
    # reading (its reader never waits for Kafka, and a closed connection is read off until
    # the client leaves: Hypercorn's put into a full queue would otherwise block for good).
    config.max_app_queue_size = 4
    # No Hypercorn pings: its ping task outlives a closed socket by up to one interval and
    # holds up shutdown. The WebSocket transport sends its own heartbeat op instead.
    config.websocket_ping_interval = None
    if settings.tls_cert:
        # With a certificate Hypercorn offers HTTP/2 (and HTTP/1.1) through ALPN.
        config.certfile = settings.tls_cert
        config.keyfile = settings.tls_key
    if settings.quic_bind:
        # HTTP/3 on UDP (``quic_fd``: a socket inherited from ``serve_workers``; a worker
        # without one serves TCP only). Every worker's TCP answers advertise it all the same.
        if listen_fd is None:
            config.quic_bind = [settings.quic_bind]
        elif quic_fd is not None:
            config.quic_bind = [f"fd://{quic_fd}"]
        config.alt_svc_headers = [alt_svc(settings)]
    return config


def alt_svc(settings: Settings) -> str:
    """The Alt-Svc value that sends a browser to HTTP/3 on the public QUIC port."""
    return f'h3=":{settings.quic_port}"; ma={settings.quic_alt_svc_max_age_s}'


def serve_one(
    settings: Settings,
    listen_fd: int | None = None,
    worker: tuple[Path, int] | None = None,
    tracing: Tracing | None = None,
    quic_fd: int | None = None,
) -> None:
    """Run one Herald process on uvloop until SIGTERM/SIGINT (``worker``, ``tracing``: see
    create_app; ``listen_fd``, ``quic_fd``: the sockets of a worker of ``serve_workers``)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(settings, listen_fd, worker, tracing, quic_fd))


async def run(
    settings: Settings,
    listen_fd: int | None = None,
    worker: tuple[Path, int] | None = None,
    tracing: Tracing | None = None,
    quic_fd: int | None = None,
) -> None:
    herald = create_app(settings, worker=worker, tracing=tracing)
    tune_garbage_collector(settings.gc_threshold)
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        log.info("signal %d: telling clients to reconnect, then stopping", signum)
        # Streams end themselves first: Hypercorn's graceful timeout would cut them mid-body.
        herald.lifecycle.begin_shutdown()
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    scheme = "https" if settings.tls_cert else "http"
    config = hypercorn_config(settings, listen_fd, quic_fd)
    quic = f", HTTP/3 on UDP {settings.quic_bind}" if config.quic_bind else ""
    log.info(
        "Herald on %s://%s%s (Kafka %s, pid %d)",
        scheme,
        settings.bind,
        quic,
        settings.kafka_bootstrap,
        os.getpid(),
    )
    # mode="asgi": the router is an ASGI app whose call returns the route's coroutine, which
    # Hypercorn's own check (a coroutine function) would not recognise.
    app = cast("ASGIFramework", herald.asgi)
    await serve(app, config, shutdown_trigger=stop.wait, mode="asgi")


def tune_garbage_collector(threshold: int) -> None:
    """Freeze what lives as long as the process; optionally collect cycles less often.

    Everything alive once the app is built (modules, the app itself) is frozen: no collection
    walks it again; after that, what survives a full collection is frozen too, until connections
    close (service/collector.py). ``threshold`` (0: Python's 700) is how many net new objects
    start a collection of the youngest generation. During a catch-up the collector kept walking
    the objects in flight (a fetch's records, the events queued for a client). A higher
    threshold is not the default: the objects of a closed connection refer to each other (the
    server's and Herald's alike), so only the collector frees them, and with collections rarer,
    memory grows under connection churn.
    """
    gc.freeze()
    COLLECTOR.install()
    if threshold:
        gc.set_threshold(threshold, 10, 10)


def _address(bind: str) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """The family and address of ``bind`` (host:port, an IPv6 host in brackets or not)."""
    host, port = bind.rsplit(":", 1)
    host = host.strip("[]")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))


def listening_socket(bind: str) -> socket.socket:
    """A TCP socket listening on ``bind`` (host:port) that child processes may inherit."""
    family, address = _address(bind)
    sock = socket.create_server(address, family=family, backlog=2048)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.set_inheritable(True)
    return sock


def quic_socket(bind: str) -> socket.socket:
    """A UDP socket bound to ``bind`` (host:port) that a child process may inherit."""
    family, address = _address(bind)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


def serve_workers(settings: Settings, count: int, argv: list[str]) -> int:
    """Run ``count`` worker processes (``herald serve`` with ``argv``) on one socket.

    Each worker is a whole Herald: its own event loop, Kafka consumer and producer. The
    kernel hands each new connection to one of them. SIGTERM/SIGINT go on to every worker;
    if one ends by itself, the others are stopped too. Returns the exit status.

    HTTP/3 is served by the first worker alone. A QUIC connection is not a socket the kernel
    hands to one process: its datagrams would reach any worker sharing the UDP port, and
    every one but the connection's own drops them (Hypercorn issue 114). TCP clients of
    every worker are told where it is (Alt-Svc); a browser that cannot reach it stays on TCP.
    """
    sock = listening_socket(settings.bind)
    fd = sock.fileno()
    quic = quic_socket(settings.quic_bind) if settings.quic_bind else None
    # Where the workers answer each other's /metrics (see worker_metrics.py).
    metrics_dir = tempfile.mkdtemp(prefix="herald-metrics-")
    command = [sys.executable, "-m", "service", "serve", *argv, "--listen-fd", str(fd)]
    command += ["--metrics-dir", metrics_dir]

    def start(index: int) -> subprocess.Popen[bytes]:
        if index or quic is None:
            return subprocess.Popen([*command, "--worker-index", str(index)], pass_fds=(fd,))
        quic_fd = quic.fileno()
        extra = ["--worker-index", "0", "--quic-fd", str(quic_fd)]
        return subprocess.Popen([*command, *extra], pass_fds=(fd, quic_fd))

    workers = [start(index) for index in range(count)]
    sock.close()  # the workers hold it now
    if quic is not None:
        quic.close()
    log.info("Herald on %s: %d workers (pids %s)", settings.bind, count, [w.pid for w in workers])
    try:
        return _supervise(workers)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(workers: list[subprocess.Popen[bytes]]) -> int:
    """Forward SIGTERM/SIGINT to ``workers``, wait for them all; stop all when one ends."""
    count = len(workers)
    stopping = False

    def stop_all(signum: int) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    def on_signal(signum: int, _frame: types.FrameType | None) -> None:
        log.info("signal %d: stopping %d workers", signum, count)
        stop_all(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    status = 0
    running = {worker.pid: worker for worker in workers}
    while running:
        pid, wait_status = os.waitpid(-1, 0)
        worker = running.pop(pid, None)
        if worker is None:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        worker.returncode = code
        if not stopping:
            log.error("worker %d ended (status %d): stopping the others", pid, code)
            status = code or 1
            stop_all(signal.SIGTERM)
        elif code not in (0, -signal.SIGTERM, -signal.SIGINT):
            status = status or code
    return status
