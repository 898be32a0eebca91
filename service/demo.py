"""GET /: the demo page (static HTML and JavaScript shipped in service/static)."""

from __future__ import annotations

from quart import Blueprint, Response, current_app

from .browser_security import DEMO_CSP

blueprint = Blueprint("demo", __name__)


@blueprint.get("/")
async def index() -> Response:
    response = await current_app.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = DEMO_CSP
    response.headers["X-Frame-Options"] = "DENY"
    return response
