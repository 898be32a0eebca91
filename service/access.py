"""Who may read, write and create what: public topics, grants, and open publishing."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .auth import Principal, TokenVerifier
from .config import Settings
from .errors import Forbidden, RateLimited, Unauthenticated
from .limits import RateLimiter

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
    """Decides subscribe, publish and create requests; raises 401/403/429 with the reason.

    Deny by default: a topic is readable without a token only if it matches
    ``HERALD_PUBLIC_TOPICS`` (in full); every other read needs a token that grants it.
    """

    def __init__(self, settings: Settings, verifier: TokenVerifier) -> None:
        self._settings = settings
        self.verifier = verifier
        self._public = re.compile(settings.public_topics) if settings.public_topics else None
        per_hour = settings.topic_creations_per_hour
        self._creations = RateLimiter(per_hour / 3600, per_hour)

    def policy(self) -> str:
        """The effective access policy in one line (logged once at startup)."""
        public = f"matching {self._settings.public_topics!r}" if self._public else "none"
        origins = ", ".join(self._settings.allowed_origins) or "this server's own"
        publishing = (
            "OPEN TO ANYONE (HERALD_PUBLISH_OPEN: local development only)"
            if self._settings.publish_open
            else "with a token's publish grant"
        )
        return (
            f"access: public topics {public}, others need a token; tokens: "
            f"{self.verifier.describe()}; page origins: {origins}; publishing {publishing}"
        )

    def principal(self, credential: Credential | None) -> Principal | None:
        """The verified principal, None without a token; a bad token is always a 401."""
        return None if credential is None else self.verifier.verify(credential.token)

    def is_public(self, topic: str) -> bool:
        return self._public is not None and self._public.fullmatch(topic) is not None

    def check_subscribe(self, principal: Principal | None, topic: str, key: str | None) -> None:
        if self.is_public(topic):
            return
        if principal is None:
            raise Unauthenticated(f"reading topic {topic!r} needs a token")
        if not principal.may_subscribe(topic, key):
            what = f"key {key!r} of topic {topic!r}" if key is not None else f"topic {topic!r}"
            raise Forbidden(f"the token does not grant reading {what}")

    def check_publisher(self, principal: Principal | None) -> None:
        """Whether this client may publish anything at all (before its body is read)."""
        if principal is None and not self._settings.publish_open:
            raise Unauthenticated("publishing needs a token")

    def check_publish(
        self, principal: Principal | None, topic: str, keys: Iterable[str | None]
    ) -> None:
        self.check_publisher(principal)
        if principal is None:
            return  # open publishing
        if self._settings.publish_open:
            return
        for key in set(keys):
            if not principal.may_publish(topic, key):
                what = f"key {key!r} of topic {topic!r}" if key is not None else f"topic {topic!r}"
                raise Forbidden(f"the token does not grant publishing to {what}")

    def check_create(self, principal: Principal | None, address: str, topic: str) -> None:
        """May this publisher create ``topic`` (it does not exist yet)? Each creation counts
        against a per-subject hourly allowance: a new topic costs every instance a reader."""
        if principal is None:
            if not self._settings.publish_open:
                raise Unauthenticated("creating a topic needs a token")
            creator = f"address {address}"
        else:
            if not principal.may_create(topic) and not self._settings.publish_open:
                raise Forbidden(f"the token does not grant creating topic {topic!r}")
            creator = f"subject {principal.subject}"
        try:
            self._creations.take(creator)
        except RateLimited as exc:
            raise RateLimited(
                f"at most {self._settings.topic_creations_per_hour} new topics an hour",
                retry_after=exc.retry_after,
            ) from None
