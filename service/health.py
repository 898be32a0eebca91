"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import json

from quart import Blueprint, Response

from .lifecycle import Lifecycle
from .metrics import Metrics
from .validation import schema_text
from .worker_metrics import WorkerMetrics


def health_blueprint(
    lifecycle: Lifecycle, metrics: Metrics, workers: WorkerMetrics | None = None
) -> Blueprint:
    """/healthz, /readyz, /metrics (of every worker, given ``workers``) and /openapi.yaml."""
    blueprint = Blueprint("health", __name__)
    openapi_text = schema_text("openapi.yaml")

    @blueprint.get("/healthz", endpoint="healthz")
    async def healthz() -> Response:
        return Response(json.dumps({"status": "ok"}), mimetype="application/json")

    @blueprint.get("/readyz", endpoint="readyz")
    async def readyz() -> Response:
        checks = lifecycle.readiness()
        ready = all(checks.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
        reason = None if ready else lifecycle.unready_reason()
        if reason is not None:
            body["reason"] = reason
        return Response(json.dumps(body), status=200 if ready else 503, mimetype="application/json")

    @blueprint.get("/metrics", endpoint="metrics")
    async def metrics_page() -> Response:
        text = metrics.exposition() if workers is None else await workers.exposition()
        return Response(text, mimetype="text/plain; version=0.0.4")

    @blueprint.get("/openapi.yaml", endpoint="openapi")
    async def openapi() -> Response:
        return Response(openapi_text, mimetype="application/yaml")

    return blueprint
