"""Every HTTP error answered as application/problem+json (RFC 9457), built here only."""

from __future__ import annotations

import json

from werkzeug.exceptions import HTTPException

from .cache_policy import NEVER
from .errors import HeraldError

PROBLEM_JSON = "application/problem+json"

# Werkzeug's own errors (routing, size limit) under Herald's stable problem types.
_HTTP_CODES = {
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    400: "malformed",
}


def problem_of(error: HeraldError | HTTPException) -> tuple[int, bytes, list[tuple[str, str]]]:
    """The status, the problem document and the headers of the answer to ``error``."""
    if isinstance(error, HeraldError):
        headers = [("Cache-Control", NEVER)]
        if error.retry_after is not None:
            headers.insert(0, ("Retry-After", str(error.retry_after)))
        return error.status, json.dumps(error.problem()).encode(), headers
    status = error.code or 500
    code = _HTTP_CODES.get(status, "http-error")
    body = {
        "type": f"urn:herald:problem:{code}",
        "title": error.name,
        "status": status,
        "detail": error.description or error.name,
    }
    return status, json.dumps(body).encode(), [("Cache-Control", NEVER)]
