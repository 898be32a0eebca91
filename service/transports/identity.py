"""Who is asking: the client's address, its page's origin and the principal of its token."""

from __future__ import annotations

import ipaddress
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
    """Identifies clients the same way on every transport: their address and scheme (as the
    trusted proxies in front report them), their page's origin, and their token."""

    def __init__(self, settings: Settings, access: Access, origins: Origins) -> None:
        self._settings = settings
        self._access = access
        self.origins = origins
        self._proxies = TrustedProxies(settings.trusted_proxies)

    def address(self, incoming: Incoming) -> str:
        """The client's address: the peer's, or the one the nearest trusted proxy reported."""
        peer = incoming.remote_addr or "unknown"
        return self._proxies.client(peer, incoming.headers.get("X-Forwarded-For"))

    def scheme(self, incoming: Incoming) -> str:
        """How the client reached us: the request's own scheme, or a trusted proxy's word
        (X-Forwarded-Proto: a TLS terminator in front makes the answer an HTTPS one)."""
        forwarded = incoming.headers.get("X-Forwarded-Proto")
        if forwarded and self._proxies.trusts(incoming.remote_addr or ""):
            proto = forwarded.split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                return proto
        return incoming.scheme

    def origin_allowed(self, incoming: Incoming) -> bool:
        return self.origins.allowed(
            incoming.headers.get("Origin"), self.scheme(incoming), incoming.host
        )

    def principal(self, incoming: Incoming) -> Principal | None:
        """The verified principal of the request's token (None without one).

        A cookie is sent by the browser on its own, whichever page asks: a cookie credential
        is honoured only on same-site requests from pages of an allowed origin (no cross-site
        request forgery), and never while any origin is allowed (``*``).
        """
        cookies = {} if self.origins.any else incoming.cookies
        credential = credential_from(
            incoming.headers.get("Authorization"),
            incoming.args,
            cookies,
            self._settings.token_cookie,
        )
        if credential is not None and credential.source == "cookie":
            if incoming.headers.get("Sec-Fetch-Site") == "cross-site":
                raise Forbidden("cookie credentials are not accepted on cross-site requests")
            if not self.origin_allowed(incoming):
                raise Forbidden("cookie credentials are not accepted from a page of another origin")
        return self._access.principal(credential)


class TrustedProxies:
    """Which X-Forwarded-For entry names the client: the one added by the nearest trusted
    proxy, never the leftmost ones a client can write itself.

    ``setting`` is empty (no proxy: the peer is the client), a hop count N (the N nearest
    hops are ours: the client is the Nth entry from the right), or CIDR networks (entries
    from the right are skipped while they are ours; the peer must be one of them).
    """

    def __init__(self, setting: str) -> None:
        setting = setting.strip()
        self._hops = int(setting) if setting.isdigit() else 0
        self._networks = (
            [ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",")]
            if setting and not setting.isdigit()
            else []
        )

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (the peer) is one of our proxies."""
        if self._hops:
            return True
        return self._ours(address)

    def client(self, peer: str, forwarded_for: str | None) -> str:
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if not hops:
            return peer
        if self._hops:
            return hops[-min(self._hops, len(hops))]
        for hop in reversed(hops):
            if not self._ours(hop):
                return hop
        return hops[0]

    def _ours(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._networks)
