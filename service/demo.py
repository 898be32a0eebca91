"""GET /: the demo page; GET /client/herald.js and .d.ts: the browser client it uses.

All are files of the package (service/static), read once and served from memory: the page
with its script and stylesheet under /static, the client under /client, where other sites'
pages import it from too. Each answer carries a strong ETag, so a revalidation is a 304.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from quart import Blueprint, Response, request
from werkzeug.exceptions import NotFound

from . import cache_policy
from .browser_security import DEMO_CSP

# JavaScript modules must be served as JavaScript (browsers refuse a module of another type,
# and nosniff is on); .d.ts is TypeScript.
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".d.ts": "application/typescript; charset=utf-8",
}
# The demo's own files: unversioned URLs, so kept briefly and then revalidated.
_DEMO_CACHE = "public, max-age=60"


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    content_type: str
    etag: str


def _load(path: str) -> _File:
    body = resources.files("service").joinpath("static", *path.split("/")).read_bytes()
    suffix = ".d.ts" if path.endswith(".d.ts") else path[path.rfind(".") :]
    return _File(body, _TYPES[suffix], hashlib.blake2b(body, digest_size=12).hexdigest())


def _answer(file: _File, cache_control: str) -> Response:
    response = Response(file.body, content_type=file.content_type)
    response.set_etag(file.etag)
    response.headers["Cache-Control"] = cache_control
    if request.if_none_match.contains(file.etag):
        return Response(b"", status=304, headers=dict(response.headers))
    return response


def demo_blueprint() -> Blueprint:
    """The demo page, its script and stylesheet, and the browser client."""
    blueprint = Blueprint("demo", __name__)
    page = _load("index.html")
    assets = {name: _load(name) for name in ("demo.js", "demo.css")}
    clients = {name: _load(f"client/{name}") for name in ("herald.js", "herald.d.ts")}

    @blueprint.get("/", endpoint="demo")
    async def index() -> Response:
        response = _answer(page, _DEMO_CACHE)
        response.headers["Content-Security-Policy"] = DEMO_CSP
        response.headers["X-Frame-Options"] = "DENY"
        return response

    @blueprint.get("/static/<name>", endpoint="static")
    async def static(name: str) -> Response:
        if name not in assets:
            raise NotFound()
        return _answer(assets[name], _DEMO_CACHE)

    @blueprint.get("/client/<name>", endpoint="client")
    async def client(name: str) -> Response:
        if name not in clients:
            raise NotFound()
        response = _answer(clients[name], cache_policy.CLIENT_SCRIPT)
        # Pages of any site may import the client: a module script is fetched with CORS.
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        if name == "herald.js":
            # Where TypeScript-aware tools (Deno, esm.sh) look for the types of a module.
            response.headers["X-TypeScript-Types"] = "/client/herald.d.ts"
        return response

    return blueprint
