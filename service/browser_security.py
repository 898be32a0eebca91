"""What browsers are told and checked for: allowed origins, CORS, HSTS, page headers."""

from __future__ import annotations

from quart import Response, request

from .config import Settings

# A page may read these from a cross-origin answer.
_EXPOSED = "ETag, Link, Retry-After, Idempotent-Replayed, Content-Type"
_ALLOWED_HEADERS = (
    "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, If-None-Match, Cache-Control"
)
# The demo page loads only its own script and stylesheet and talks only to its origin.
DEMO_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class Origins:
    """The allow-list: configured origins, plus the server's own (same-origin pages)."""

    def __init__(self, settings: Settings) -> None:
        self._allowed = {origin.rstrip("/") for origin in settings.allowed_origins}
        self._any = "*" in self._allowed
        self.configured = bool(self._allowed)

    def allowed(self, origin: str | None, scheme: str, host: str) -> bool:
        """No Origin header means no browser page is asking: nothing to protect against."""
        if origin is None:
            return True
        origin = origin.rstrip("/")
        if self._any or origin in self._allowed:
            return True
        # Same origin: a page this server served (the demo page), over ws(s) or http(s).
        own_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        return origin == f"{own_scheme}://{host}"

    def cors_origin(self, origin: str | None) -> str | None:
        """The origin to echo in Access-Control-Allow-Origin, for listed origins only."""
        if origin is None:
            return None
        origin = origin.rstrip("/")
        return origin if (self._any or origin in self._allowed) else None


def preflight(origins: Origins) -> Response:
    """Answer to an OPTIONS preflight: 204 for a listed origin, 403 otherwise."""
    origin = origins.cors_origin(request.headers.get("Origin"))
    if origin is None:
        return Response(b"", status=403)
    response = Response(b"", status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def decorate(response: Response, origins: Origins, settings: Settings) -> Response:
    """Headers every answer gets (see browser_headers), on a response Quart made."""
    for name, value in browser_headers(
        origins, settings, request.headers.get("Origin"), request.scheme
    ):
        if name == "Vary":
            response.vary.add(value)  # next to what the route varies by
        else:
            response.headers[name] = value
    return response


def browser_headers(
    origins: Origins, settings: Settings, origin: str | None, scheme: str
) -> list[tuple[str, str]]:
    """Headers every answer gets: CORS for listed origins, HSTS over HTTPS, nosniff."""
    headers = []
    allowed = origins.cors_origin(origin)
    if allowed is not None:
        headers += [
            ("Access-Control-Allow-Origin", allowed),
            ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Expose-Headers", _EXPOSED),
        ]
    if origins.configured:
        # Only then do answers differ by Origin: a CDN need not split its cache otherwise.
        headers.append(("Vary", "Origin"))
    if scheme == "https" and settings.hsts_max_age_s > 0:
        value = f"max-age={settings.hsts_max_age_s}"
        if settings.hsts_include_subdomains:
            value += "; includeSubDomains"
        headers.append(("Strict-Transport-Security", value))
    headers.append(("X-Content-Type-Options", "nosniff"))
    # access_token may sit in a URL: never let it travel on as a Referer.
    headers.append(("Referrer-Policy", "no-referrer"))
    return headers
