"""Who is asking: the client's address and the principal of its token, for any transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..access import credential_from
from ..auth import Principal
from ..errors import Forbidden
from ..state import Herald


class Headers(Protocol):
    def get(self, key: str) -> str | None: ...


class Incoming(Protocol):
    """What is read here of a request or a WebSocket: Quart's, or an ASGI scope's (scope.py)."""

    @property
    def headers(self) -> Headers: ...
    @property
    def args(self) -> Mapping[str, str]: ...
    @property
    def cookies(self) -> Mapping[str, str]: ...
    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def remote_addr(self) -> str | None: ...


def client_address(h: Herald, incoming: Incoming) -> str:
    """The peer address, or the proxy-reported one when HERALD_TRUST_FORWARDED_FOR says so."""
    if h.settings.trust_forwarded_for:
        forwarded = incoming.headers.get("X-Forwarded-For") or ""
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return incoming.remote_addr or "unknown"


def origin_allowed(h: Herald, incoming: Incoming) -> bool:
    return h.origins.allowed(incoming.headers.get("Origin"), incoming.scheme, incoming.host)


def principal_of(h: Herald, incoming: Incoming) -> Principal | None:
    """The verified principal of the request's token (None without one).

    A cookie is sent by the browser on its own, whichever page asks: a cookie credential is
    honoured only for pages of an allowed origin (no cross-site request forgery).
    """
    credential = credential_from(
        incoming.headers.get("Authorization"),
        incoming.args,
        incoming.cookies,
        h.settings.token_cookie,
    )
    if credential is not None and credential.source == "cookie" and not origin_allowed(h, incoming):
        raise Forbidden("cookie credentials are not accepted from a page of another origin")
    return h.access.principal(credential)
