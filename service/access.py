"""Who may read and write what: public and private topics, grants, and open publishing."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .auth import Principal, TokenVerifier
from .config import Settings
from .errors import Forbidden, Unauthenticated

log = logging.getLogger(__name__)

BEARER = "bearer "


@dataclass(frozen=True, slots=True)
class Credential:
    """A token as a request carried it; ``source`` is header, query or cookie."""

    token: str
    source: str


def credential_from(
    authorization: str | None,
    args: Mapping[str, str],
    cookies: Mapping[str, str],
    cookie_name: str,
) -> Credential | None:
    """The request's token: an Authorization header, else ``access_token``, else the cookie.

    EventSource and browser WebSockets cannot set headers, hence the query parameter (which
    Herald never logs) and the cookie.
    """
    authorization = authorization or ""
    if authorization.lower().startswith(BEARER):
        return Credential(authorization[len(BEARER) :].strip(), "header")
    if args.get("access_token"):
        return Credential(args["access_token"], "query")
    if cookies.get(cookie_name):
        return Credential(cookies[cookie_name], "cookie")
    return None


class Access:
    """Decides subscribe and publish requests; raises 401/403 errors with the reason."""

    def __init__(self, settings: Settings, verifier: TokenVerifier) -> None:
        self._settings = settings
        self._verifier = verifier
        self._private = re.compile(settings.private_topics) if settings.private_topics else None
        if settings.publish_open:
            log.warning(
                "HERALD_PUBLISH_OPEN is set: ANYONE who can reach this server may publish to "
                "every exposed topic. Use it for local development only."
            )

    def principal(self, credential: Credential | None) -> Principal | None:
        """The verified principal, None without a token; a bad token is always a 401."""
        return None if credential is None else self._verifier.verify(credential.token)

    def is_private(self, topic: str) -> bool:
        return self._private is not None and self._private.fullmatch(topic) is not None

    def check_subscribe(self, principal: Principal | None, topic: str, key: str | None) -> None:
        if not self.is_private(topic):
            return
        if principal is None:
            raise Unauthenticated(f"topic {topic!r} is private: send a token")
        if not principal.may_subscribe(topic, key):
            what = f"key {key!r} of topic {topic!r}" if key is not None else f"topic {topic!r}"
            raise Forbidden(f"the token does not grant reading {what}")

    def check_publish(
        self, principal: Principal | None, topic: str, keys: Iterable[str | None]
    ) -> None:
        if self._settings.publish_open:
            return
        if principal is None:
            raise Unauthenticated("publishing needs a token")
        for key in set(keys):
            if not principal.may_publish(topic, key):
                what = f"key {key!r} of topic {topic!r}" if key is not None else f"topic {topic!r}"
                raise Forbidden(f"the token does not grant publishing to {what}")
