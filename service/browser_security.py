"""What browsers are told and checked for: allowed origins, CORS, HSTS, page headers."""

from __future__ import annotations

from .config import Settings

# A page may read these from a cross-origin answer.
_EXPOSED = "ETag, Link, Retry-After, Idempotent-Replayed, Content-Type, X-Request-Id"
_ALLOWED_HEADERS = (
    "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, If-None-Match, Cache-Control,"
    " X-Request-Id"
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
        # Any page may use Herald: then never with the visitor's credentials (cookies).
        self.any = "*" in self._allowed
        self.configured = bool(self._allowed)

    def allowed(self, origin: str | None, scheme: str, host: str) -> bool:
        """No Origin header means no browser page is asking: nothing to protect against."""
        if origin is None:
            return True
        origin = origin.rstrip("/")
        if self.any or origin in self._allowed:
            return True
        # Same origin: a page this server served (the demo page), over ws(s) or http(s).
        own_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        return origin == f"{own_scheme}://{host}"

    def cors_origin(self, origin: str | None) -> str | None:
        """The origin to echo in Access-Control-Allow-Origin, for listed origins only."""
        if origin is None:
            return None
        origin = origin.rstrip("/")
        if self.any:
            return "*"
        return origin if origin in self._allowed else None


def preflight(origins: Origins, origin: str | None) -> tuple[int, list[tuple[str, str]]]:
    """The status and headers of an answer to an OPTIONS preflight: 204 for a listed origin,
    403 otherwise."""
    if origins.cors_origin(origin) is None:
        return 403, []
    return 204, [
        ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
        ("Access-Control-Allow-Headers", _ALLOWED_HEADERS),
        ("Access-Control-Max-Age", "600"),
    ]


def browser_headers(
    origins: Origins, settings: Settings, origin: str | None, scheme: str
) -> list[tuple[str, str]]:
    """Headers every answer gets: CORS for listed origins, HSTS over HTTPS, nosniff."""
    headers = []
    allowed = origins.cors_origin(origin)
    if allowed is not None:
        headers.append(("Access-Control-Allow-Origin", allowed))
        if allowed != "*":
            # "*" never with credentials: any page could then read as the visitor.
            headers.append(("Access-Control-Allow-Credentials", "true"))
        headers.append(("Access-Control-Expose-Headers", _EXPOSED))
    if origins.configured and not origins.any:
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
