"""The app factory: builds the parts, wires the blueprints, starts and stops Kafka clients."""

from __future__ import annotations

import asyncio
import logging

from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

from . import cache_policy, demo, health
from .access import Access
from .auth import TokenVerifier
from .broadcaster import Broadcasters
from .browser_security import Origins, decorate, preflight
from .config import Settings, load_settings
from .consume import Feed
from .errors import HeraldError
from .history import History
from .ingest import Ingest
from .limits import ConnectionLimits, RateLimiter
from .metrics import Metrics
from .problems import problem_response
from .publish import Publisher
from .purge import Purger
from .resume import Resumer
from .state import Herald
from .topics import TopicPolicy
from .transports import direct, http_history, http_publish, http_snapshot, sse, websocket
from .validation import EventValidator

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or load_settings()
    app = Quart(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # A body that trickles in (slowloris) is cut off rather than held open for a minute.
    app.config["BODY_TIMEOUT"] = settings.body_timeout_s
    policy = TopicPolicy(settings)
    metrics = Metrics()
    broadcasters = Broadcasters(settings)
    publisher = Publisher(settings, policy)
    origins = Origins(settings)
    purger = Purger(settings, metrics)
    h = Herald(
        settings=settings,
        policy=policy,
        broadcasters=broadcasters,
        publisher=publisher,
        ingest=Ingest(publisher, broadcasters),
        access=Access(settings, TokenVerifier(settings)),
        origins=origins,
        address_rate=RateLimiter(
            settings.publish_rate_per_address, settings.publish_burst_per_address
        ),
        token_rate=RateLimiter(settings.publish_rate_per_token, settings.publish_burst_per_token),
        connections=ConnectionLimits(
            settings.max_connections_per_address, settings.max_connections
        ),
        feed=Feed(settings, policy, broadcasters, metrics, on_records=purger.changed),
        metrics=metrics,
        validator=EventValidator(settings.max_batch_events),
        resumer=Resumer(History(settings)),
    )
    app.extensions["herald"] = h
    direct.keep_asgi_send(app)
    http_publish.serve_publish(app, h)
    for module in (http_snapshot, http_history, sse, websocket, health, demo):
        app.register_blueprint(module.blueprint)

    @app.before_request
    async def answer_preflight() -> Response | None:
        return preflight(origins) if request.method == "OPTIONS" else None

    # One hook rather than three: Quart awaits each hook of every request.
    @app.after_request
    async def finish_response(response: Response) -> Response:
        decorate(response, origins, settings)
        # A cache keeps an answer without Cache-Control for its own default time: errors,
        # health and metrics must say they are not to be kept. (getlist: a missing header
        # costs Headers.get an exception.)
        if not response.headers.getlist("Cache-Control"):
            response.headers["Cache-Control"] = cache_policy.NEVER
        metrics.answered(request.endpoint, response.status_code)
        return response

    app.register_error_handler(HeraldError, problem_response)
    app.register_error_handler(HTTPException, problem_response)

    @app.before_serving
    async def start_kafka() -> None:
        await h.publisher.start()
        await purger.start()
        await h.feed.start()

    @app.after_serving
    async def stop_kafka() -> None:
        h.begin_shutdown()
        steps = (
            ("consumer", h.feed.stop),
            ("purger", purger.stop),
            ("history reader", h.resumer.history.stop),
            ("producer", h.publisher.stop),
        )
        for name, stop in steps:
            # A Kafka client that does not stop must not keep the process from exiting
            # (a supervisor waits for it): each gets the grace time, then is left behind.
            try:
                async with asyncio.timeout(settings.shutdown_grace_s):
                    await stop()
            except TimeoutError:
                log.warning(
                    "shutdown: the %s did not stop within %ss", name, settings.shutdown_grace_s
                )
        log.info("stopped")

    return app
