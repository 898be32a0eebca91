"""Every HTTP error answered as application/problem+json (RFC 9457), built here only."""

from __future__ import annotations

import json

from quart import Response
from werkzeug.exceptions import HTTPException

from .errors import HeraldError

PROBLEM_JSON = "application/problem+json"

# Werkzeug's own errors (routing, size limit) under Herald's stable problem types.
_HTTP_CODES = {
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    400: "malformed",
}


def problem_response(error: HeraldError) -> Response:
    response = Response(json.dumps(error.problem()), status=error.status, mimetype=PROBLEM_JSON)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    response.headers["Cache-Control"] = "no-store"
    return response


def http_problem_response(error: HTTPException) -> Response:
    status = error.code or 500
    code = _HTTP_CODES.get(status, "http-error")
    body = {
        "type": f"urn:herald:problem:{code}",
        "title": error.name,
        "status": status,
        "detail": error.description or error.name,
    }
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    response.headers["Cache-Control"] = "no-store"
    return response
