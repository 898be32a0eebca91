"""service/transports/identity.py: the client's address, scheme, origin and token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from service.access import Access
from service.auth import TokenVerifier
from service.browser_security import Origins
from service.config import Settings
from service.errors import Forbidden
from service.transports.identity import Gate, TrustedProxies

from ..tokens import SECRET, token


@dataclass
class Headers:
    values: dict[str, str]

    def get(self, key: str) -> str | None:
        return self.values.get(key)


@dataclass
class Incoming:
    peer: str = "10.0.0.9"
    headers_: dict[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    args: Mapping[str, str] = field(default_factory=dict)
    scheme: str = "http"
    host: str = "herald.example"

    @property
    def headers(self) -> Headers:
        return Headers(self.headers_)

    @property
    def remote_addr(self) -> str | None:
        return self.peer


def gate(**settings: object) -> Gate:
    configured = Settings(jwt_secret=SECRET, **settings)  # type: ignore[arg-type]
    return Gate(configured, Access(configured, TokenVerifier(configured)), Origins(configured))


@pytest.mark.parametrize(
    ("setting", "peer", "forwarded", "client"),
    [
        ("", "10.0.0.9", "6.6.6.6", "10.0.0.9"),  # no proxy trusted: the header is ignored
        ("1", "10.0.0.9", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the entry our proxy added
        ("2", "10.0.0.9", "6.6.6.6, 1.2.3.4, 172.16.0.1", "1.2.3.4"),
        ("2", "10.0.0.9", "1.2.3.4", "1.2.3.4"),  # fewer entries than hops: the oldest
        ("10.0.0.0/8", "10.0.0.9", "6.6.6.6, 1.2.3.4, 10.1.1.1", "1.2.3.4"),
        ("10.0.0.0/8", "192.0.2.7", "6.6.6.6", "192.0.2.7"),  # peer not ours: header ignored
        ("10.0.0.0/8, 172.16.0.0/12", "10.0.0.9", "1.2.3.4, 172.16.0.1", "1.2.3.4"),
        ("1", "10.0.0.9", "", "10.0.0.9"),
    ],
)
def test_the_client_is_the_address_the_nearest_trusted_proxy_saw(
    setting: str, peer: str, forwarded: str, client: str
) -> None:
    assert TrustedProxies(setting).client(peer, forwarded) == client


def test_a_leftmost_entry_a_client_wrote_is_never_taken() -> None:
    spoofed = Incoming(headers_={"X-Forwarded-For": "127.0.0.1, 203.0.113.5"})
    assert gate(trusted_proxies="1").address(spoofed) == "203.0.113.5"


def test_a_trusted_proxy_saying_https_makes_the_answer_an_https_one() -> None:
    behind_tls = Incoming(headers_={"X-Forwarded-Proto": "https"})
    assert gate(trusted_proxies="1").scheme(behind_tls) == "https"
    assert gate().scheme(behind_tls) == "http"  # nobody trusted: the client's word is ignored
    odd = Incoming(headers_={"X-Forwarded-Proto": "gopher"})
    assert gate(trusted_proxies="1").scheme(odd) == "http"


def test_a_cookie_is_refused_on_a_cross_site_request() -> None:
    cookie = {"herald_token": token("alice")}
    same_site = Incoming(cookies=cookie, headers_={"Sec-Fetch-Site": "same-origin"})
    assert gate().principal(same_site) is not None
    cross = Incoming(cookies=cookie, headers_={"Sec-Fetch-Site": "cross-site"})
    with pytest.raises(Forbidden, match="cross-site"):
        gate().principal(cross)
    # A header token is what a page of another site sends: that one is fine.
    header = Incoming(
        headers_={"Sec-Fetch-Site": "cross-site", "Authorization": f"Bearer {token('bob')}"}
    )
    principal = gate().principal(header)
    assert principal is not None and principal.subject == "bob"


def test_any_origin_never_goes_with_cookies() -> None:
    visitor = Incoming(
        cookies={"herald_token": token("alice")}, headers_={"Origin": "https://evil.example"}
    )
    assert gate(allowed_origins=("*",)).principal(visitor) is None


def test_a_cookie_from_a_page_of_another_origin_is_refused() -> None:
    page = Incoming(
        cookies={"herald_token": token("alice")}, headers_={"Origin": "https://evil.example"}
    )
    with pytest.raises(Forbidden, match="another origin"):
        gate(allowed_origins=("https://app.example",)).principal(page)
