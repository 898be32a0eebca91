"""An ASGI HTTP request read as Quart's Request would read it, for a route served without Quart.

Only what transports/identity.py and the publish route look at: headers (first value wins,
as werkzeug's ``Headers.get``), the query, the cookies, the scheme, the host and the peer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.http import parse_cookie
from werkzeug.sansio.utils import get_host


class ScopeHeaders:
    """Request headers by case-insensitive name (ASGI gives names in lower case)."""

    __slots__ = ("_values",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        values: dict[str, str] = {}
        for name, value in raw:
            values.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        self._values = values

    def get(self, key: str) -> str | None:
        return self._values.get(key.lower())


class ScopeRequest:
    """The request of an ASGI ``http`` scope."""

    __slots__ = ("_scope", "headers")

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self._scope = scope
        self.headers = ScopeHeaders(scope["headers"])

    @property
    def args(self) -> dict[str, str]:
        query = self._scope.get("query_string", b"").decode("utf-8", "replace")
        args: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            args.setdefault(name, value)
        return args

    @property
    def cookies(self) -> Mapping[str, str]:
        return parse_cookie(self.headers.get("Cookie") or "")

    @property
    def scheme(self) -> str:
        return str(self._scope.get("scheme", "http"))

    @property
    def host(self) -> str:
        server = self._scope.get("server")
        return get_host(self.scheme, self.headers.get("Host"), server)

    @property
    def remote_addr(self) -> str | None:
        client = self._scope.get("client")
        return str(client[0]) if client else None

    @property
    def mimetype(self) -> str:
        """The media type of the body, in lower case, without parameters."""
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        """The declared body size, if any and well-formed."""
        declared = self.headers.get("Content-Length")
        if declared is None or not (declared.isascii() and declared.isdigit()):
            return None
        return int(declared)
