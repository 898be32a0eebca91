"""The app factory: builds the parts, wires the blueprints, starts and stops Kafka clients."""

from __future__ import annotations

import logging

from quart import Quart
from werkzeug.exceptions import HTTPException

from . import demo, health
from .broadcaster import Broadcasters
from .config import Settings, load_settings
from .consume import Feed
from .errors import HeraldError
from .history import History
from .ingest import Ingest
from .metrics import Metrics
from .problems import http_problem_response, problem_response
from .publish import Publisher
from .resume import Resumer
from .state import Herald
from .topics import TopicPolicy
from .transports import http_history, http_publish, http_snapshot, sse, websocket
from .validation import EventValidator

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or load_settings()
    app = Quart(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    policy = TopicPolicy(settings)
    metrics = Metrics()
    broadcasters = Broadcasters(settings)
    publisher = Publisher(settings, policy)
    h = Herald(
        settings=settings,
        policy=policy,
        broadcasters=broadcasters,
        publisher=publisher,
        ingest=Ingest(publisher, broadcasters),
        feed=Feed(settings, policy, broadcasters, metrics),
        metrics=metrics,
        validator=EventValidator(settings.max_batch_events),
        resumer=Resumer(History(settings)),
    )
    app.extensions["herald"] = h
    for module in (http_publish, http_snapshot, http_history, sse, websocket, health, demo):
        app.register_blueprint(module.blueprint)
    app.register_error_handler(HeraldError, problem_response)
    app.register_error_handler(HTTPException, http_problem_response)

    @app.before_serving
    async def start_kafka() -> None:
        await h.publisher.start()
        await h.feed.start()

    @app.after_serving
    async def stop_kafka() -> None:
        h.begin_shutdown()
        await h.feed.stop()
        await h.resumer.history.stop()
        await h.publisher.stop()
        log.info("stopped")

    return app
