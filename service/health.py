"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import json

from quart import Blueprint, Response

from .state import herald
from .validation import SCHEMAS_DIR

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
async def healthz() -> Response:
    return Response(json.dumps({"status": "ok"}), mimetype="application/json")


@blueprint.get("/readyz")
async def readyz() -> Response:
    h = herald()
    checks = {
        "kafka": h.feed.kafka_reachable,
        "consumer": h.feed.positioned.is_set(),
        "serving": not h.shutting_down,
    }
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return Response(
        json.dumps(body),
        status=200 if ready else 503,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )


@blueprint.get("/metrics")
async def metrics() -> Response:
    return Response(herald().metrics.exposition(), mimetype="text/plain; version=0.0.4")


@blueprint.get("/openapi.yaml")
async def openapi() -> Response:
    return Response((SCHEMAS_DIR / "openapi.yaml").read_bytes(), mimetype="application/yaml")
