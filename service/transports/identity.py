"""Who is asking: the client's address, its page's origin and the principal of its token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..access import Access, credential_from
from ..auth import Principal
from ..browser_security import Origins
from ..config import Settings
from ..errors import Forbidden


class Headers(Protocol):
    def get(self, key: str) -> str | None: ...


class Incoming(Protocol):
    """What is read here of a request or a WebSocket: Quart's, or an ASGI scope's (http.py)."""

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


class Gate:
    """Identifies clients the same way on every transport."""

    def __init__(self, settings: Settings, access: Access, origins: Origins) -> None:
        self._settings = settings
        self._access = access
        self.origins = origins

    def address(self, incoming: Incoming) -> str:
        """The peer address, or the proxy-reported one when HERALD_TRUST_FORWARDED_FOR says so."""
        if self._settings.trust_forwarded_for:
            forwarded = incoming.headers.get("X-Forwarded-For") or ""
            first = forwarded.split(",")[0].strip()
            if first:
                return first
        return incoming.remote_addr or "unknown"

    def origin_allowed(self, incoming: Incoming) -> bool:
        return self.origins.allowed(incoming.headers.get("Origin"), incoming.scheme, incoming.host)

    def principal(self, incoming: Incoming) -> Principal | None:
        """The verified principal of the request's token (None without one).

        A cookie is sent by the browser on its own, whichever page asks: a cookie credential
        is honoured only for pages of an allowed origin (no cross-site request forgery).
        """
        credential = credential_from(
            incoming.headers.get("Authorization"),
            incoming.args,
            incoming.cookies,
            self._settings.token_cookie,
        )
        if (
            credential is not None
            and credential.source == "cookie"
            and not self.origin_allowed(incoming)
        ):
            raise Forbidden("cookie credentials are not accepted from a page of another origin")
        return self._access.principal(credential)
