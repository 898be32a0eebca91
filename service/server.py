"""Serving the app with Hypercorn; SIGTERM lets every stream say goodbye before it ends."""

from __future__ import annotations

import asyncio
import logging
import signal

from hypercorn.asyncio import serve
from hypercorn.config import Config

from .app import create_app
from .config import Settings
from .state import Herald

log = logging.getLogger(__name__)


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [settings.bind]
    config.accesslog = None
    config.graceful_timeout = settings.shutdown_grace_s
    # Quart queues inbound WebSocket messages without bound: cap each one's size at least.
    # The app enforces HERALD_MAX_BODY_BYTES itself (close 1009); Hypercorn's own cap sits
    # above it because Hypercorn 0.18 does not close promptly once its cap is hit and the
    # client sends another frame (its buffer is not cleared after FrameTooLargeError).
    config.websocket_max_message_size = 2 * settings.max_body_bytes + 64 * 1024
    # No Hypercorn pings: its ping task outlives a closed socket by up to one interval and
    # holds up shutdown. The WebSocket transport sends its own heartbeat op instead.
    config.websocket_ping_interval = None
    if settings.tls_cert:
        # With a certificate Hypercorn offers HTTP/2 (and HTTP/1.1) through ALPN.
        config.certfile = settings.tls_cert
        config.keyfile = settings.tls_key
    return config


async def run(settings: Settings) -> None:
    app = create_app(settings)
    h: Herald = app.extensions["herald"]
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        log.info("signal %d: telling clients to reconnect, then stopping", signum)
        # Streams end themselves first: Hypercorn's graceful timeout would cut them mid-body.
        h.begin_shutdown()
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    scheme = "https" if settings.tls_cert else "http"
    log.info("Herald on %s://%s (Kafka %s)", scheme, settings.bind, settings.kafka_bootstrap)
    await serve(app, hypercorn_config(settings), shutdown_trigger=stop.wait)
