"""The app factory: builds the parts and wires them to the routes; no logic of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from quart import Quart

from . import demo
from .access import Access
from .asgi import App
from .auth import TokenVerifier
from .broadcaster import Broadcasters
from .browser_security import Origins
from .config import Settings, load_settings
from .consume import Feed
from .health import health_blueprint
from .history import History
from .ingest import Ingest
from .kafka import Kafka
from .kafka.clients import AioKafka
from .lag import Lag
from .lifecycle import Lifecycle
from .metrics import Metrics
from .publish import Publisher
from .purge import Purger
from .quart_app import quart_app
from .reads import Reads
from .request_log import AccessLog
from .resume import Resumer
from .router import Route, Router
from .streams import Streams
from .topics import TopicPolicy
from .tracing import Tracing, from_environment
from .transports import fast_path, h3
from .transports.http import Answers, Request
from .transports.http_history import HistoryRoute
from .transports.http_publish import PublishRoute
from .transports.http_snapshot import snapshot_blueprint
from .transports.identity import Gate
from .transports.sse import SseRoute
from .transports.streaming import StreamParts
from .transports.websocket import WebSocketRoute
from .worker_metrics import WorkerMetrics

# One path segment, as Quart's ``string`` converter takes it (the server decoded %XX).
_TOPIC = r"/v1/topics/(?P<topic>[^/]+)"


@dataclass(frozen=True, slots=True)
class Herald:
    """One Herald: the ASGI app a server runs, and the lifecycle it starts and stops."""

    asgi: App
    lifecycle: Lifecycle
    quart: Quart
    metrics: Metrics


def create_app(
    settings: Settings | None = None,
    kafka: Kafka | None = None,
    worker: tuple[Path, int] | None = None,
    tracing: Tracing | None = None,
) -> Herald:
    """Herald for ``settings`` (default: from the environment) on ``kafka`` (default: aiokafka
    clients for the configured cluster; kafka.memory.MemoryKafka in tests); ``worker``: the
    directory and index of a worker of ``serve --workers``, whose /metrics shows them all."""
    settings = settings or load_settings()
    kafka = kafka or AioKafka(settings)
    # Tracing: as the OTEL_* variables say (tests hand in their own provider).
    tracing = tracing or from_environment()
    metrics = Metrics()
    policy = TopicPolicy(settings)
    origins = Origins(settings)
    access = Access(settings, TokenVerifier(settings))
    gate = Gate(settings, access, origins)
    broadcasters = Broadcasters(settings, tracing)
    metrics.broadcasters.set_function(lambda: len(broadcasters))
    metrics.broadcasters_idle.set_function(broadcasters.idle_count)
    purger = Purger(settings, metrics)
    streams = Streams(settings.max_connections_per_address, settings.max_connections)
    lag = Lag(settings.lag_notice_s, settings.lag_unready_s, metrics, streams.tell_lag)
    feed = Feed(
        settings,
        kafka,
        policy,
        broadcasters,
        metrics,
        on_records=purger.changed,
        lag=lag,
        tracing=tracing,
    )
    history = History(settings, kafka, metrics)
    reads = Reads(
        policy, access, broadcasters, feed, Resumer(history, settings.history_scan_records)
    )
    publisher = Publisher(settings, policy, kafka, metrics)
    ingest = Ingest(settings, publisher, broadcasters, access, metrics, tracing)
    lifecycle = Lifecycle(settings, access, publisher, feed, history, purger, streams)
    answers = Answers(gate, settings, metrics)
    workers = None if worker is None else WorkerMetrics(*worker, metrics.exposition)
    fast = fast_path.load(settings.direct_writes)
    streaming = StreamParts(settings, gate, reads, streams, answers, metrics, fast)
    routes = [
        Route("/v1/ws", {"WEBSOCKET": WebSocketRoute(streaming, ingest)}, "ws"),
        Route(f"{_TOPIC}/stream", {"GET": SseRoute(streaming)}, "stream"),
        Route(
            f"{_TOPIC}/events",
            {
                "GET": HistoryRoute(streaming),
                "POST": PublishRoute(settings, gate, ingest, answers),
            },
            "history",
        ),
    ]
    quart = quart_app(
        settings,
        gate,
        metrics,
        [
            snapshot_blueprint(settings, gate, reads),
            health_blueprint(lifecycle, metrics, workers),
            demo.demo_blueprint(),
        ],
    )
    quart.before_serving(lifecycle.start)
    quart.after_serving(lifecycle.stop)
    quart.after_serving(_shut(tracing))
    if workers is not None:
        quart.before_serving(workers.start)
        quart.after_serving(workers.stop)
    # Quart's own signature names the ASGI message types; it is an ASGI app all the same.
    fallback = cast(App, quart)
    access_log = (
        AccessLog(lambda scope: gate.address(Request(scope))) if settings.access_log else None
    )
    quic = h3.load() if settings.quic_bind else None
    router = Router(routes, fallback, origins, answers, access_log, quic)
    return Herald(router, lifecycle, quart, metrics)


def _shut(tracing: Tracing) -> Callable[[], Awaitable[None]]:
    async def shutdown() -> None:
        # The exporter's last send blocks: not on the event loop.
        await asyncio.to_thread(tracing.shutdown)

    return shutdown
