"""GET /: the demo page (static HTML and JavaScript shipped in service/static)."""

from __future__ import annotations

from quart import Blueprint, Response, current_app

blueprint = Blueprint("demo", __name__)


@blueprint.get("/")
async def index() -> Response:
    return await current_app.send_static_file("index.html")
