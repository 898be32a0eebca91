"""Liveness, readiness, metrics, the OpenAPI document and the demo page."""

from __future__ import annotations

import httpx
import pytest
import yaml
from openapi_spec_validator import validate

from ..clients import publish
from ..serving import InProcess


@pytest.fixture(scope="module")
def direct_writes() -> str:
    """Nothing here depends on how frames reach a socket: the fast path only (see conftest)."""
    return "auto"


async def test_healthz_and_readyz(server: InProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"kafka": True, "consumer": True, "serving": True}


async def test_metrics_count_published_events(server: InProcess, topic: str) -> None:
    await publish(server.base_url, topic, [{"data": 1}, {"data": 2}])
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    published = next(
        line
        for line in response.text.splitlines()
        if line.startswith("herald_events_published_total ")
    )
    assert float(published.split()[1]) >= 2


async def test_openapi_document_is_served_and_valid(server: InProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/openapi.yaml")
    assert response.status_code == 200
    document = yaml.safe_load(response.text)
    validate(document)
    assert "/v1/topics/{topic}/events" in document["paths"]


async def test_demo_page_is_served_with_the_client_it_uses(server: InProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        page = await client.get("/")
        script = await client.get("/static/demo.js")
        herald_js = await client.get("/client/herald.js")
    assert page.status_code == 200 and "<title>Herald demo</title>" in page.text
    assert script.status_code == 200 and "/client/herald.js" in script.text
    assert herald_js.status_code == 200 and "/v1/ws" in herald_js.text
