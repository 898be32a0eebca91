"""The routes a stock Quart app serves: snapshots, health and metrics, the OpenAPI document,
the demo page and the browser client. Herald's own ASGI routes (router.py) stand in front."""

from __future__ import annotations

from quart import Blueprint, Quart, Response, request
from werkzeug.exceptions import HTTPException

from . import cache_policy, request_log
from .browser_security import browser_headers, preflight
from .config import Settings
from .errors import HeraldError
from .metrics import Metrics
from .problems import PROBLEM_JSON, problem_of
from .transports.identity import Gate


def quart_app(
    settings: Settings, gate: Gate, metrics: Metrics, blueprints: list[Blueprint]
) -> Quart:
    """A Quart app with ``blueprints``, answering as Herald's own routes do: problems for
    errors, browser headers, a Cache-Control on every answer, requests counted per route."""
    # No static folder: the demo's files are served from memory (demo.py).
    app = Quart(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # A body that trickles in (slowloris) is cut off rather than held open for a minute.
    app.config["BODY_TIMEOUT"] = settings.body_timeout_s
    for blueprint in blueprints:
        app.register_blueprint(blueprint)

    @app.before_request
    async def answer_preflight() -> Response | None:
        if request.method != "OPTIONS":
            return None
        status, headers = preflight(gate.origins, request.headers.get("Origin"))
        return Response(b"", status=status, headers=dict(headers))

    # One hook rather than three: Quart awaits each hook of every request.
    @app.after_request
    async def finish_response(response: Response) -> Response:
        for name, value in browser_headers(
            gate.origins, settings, request.headers.get("Origin"), gate.scheme(request)
        ):
            if name == "Vary":
                response.vary.add(value)  # next to what the route varies by
            else:
                response.headers[name] = value
        # A cache keeps an answer without Cache-Control for its own default time: errors,
        # health and metrics must say they are not to be kept. (getlist: a missing header
        # costs Headers.get an exception.)
        if not response.headers.getlist("Cache-Control"):
            response.headers["Cache-Control"] = cache_policy.NEVER
        request_id = request_log.request_id()
        if request_id is not None:
            response.headers["X-Request-Id"] = request_id
        endpoint = request.endpoint
        metrics.answered(endpoint.rpartition(".")[2] if endpoint else None, response.status_code)
        request_log.answered(response.status_code)
        return response

    app.register_error_handler(HeraldError, problem_response)
    app.register_error_handler(HTTPException, problem_response)
    return app


async def problem_response(error: HeraldError | HTTPException) -> Response:
    status, body, headers = problem_of(error)
    return Response(body, status=status, mimetype=PROBLEM_JSON, headers=dict(headers))
