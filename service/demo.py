"""GET /: the demo page; GET /client/herald.js and .d.ts: the browser client it uses.

Both are files in service/static: the page and its script and stylesheet under /static, the
client under /client, where other sites' pages import it from too.
"""

from __future__ import annotations

from quart import Blueprint, Response, current_app
from werkzeug.exceptions import NotFound

from . import cache_policy
from .browser_security import DEMO_CSP

blueprint = Blueprint("demo", __name__)

# The client's files and what they are. JavaScript modules must be served as JavaScript
# (browsers refuse a module of another type, and nosniff is on); .d.ts is TypeScript.
CLIENT_FILES = {
    "herald.js": "text/javascript; charset=utf-8",
    "herald.d.ts": "application/typescript; charset=utf-8",
}


@blueprint.get("/")
async def index() -> Response:
    response = await current_app.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = DEMO_CSP
    response.headers["X-Frame-Options"] = "DENY"
    return response


@blueprint.get("/client/<name>")
async def client(name: str) -> Response:
    content_type = CLIENT_FILES.get(name)
    if content_type is None:
        raise NotFound()
    response = await current_app.send_static_file(f"client/{name}")
    response.headers["Content-Type"] = content_type
    response.headers["Cache-Control"] = cache_policy.CLIENT_SCRIPT
    # Pages of any site may import the client: a module script is fetched with CORS.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    if name == "herald.js":
        # Where TypeScript-aware tools (Deno, esm.sh) look for the types of a module.
        response.headers["X-TypeScript-Types"] = "/client/herald.d.ts"
    return response
