"""Tokens: JWTs verified with PyJWT, and the topic grants their ``herald`` claim carries.

A grant is ``topic`` or ``topic/key``; ``*`` matches any run of characters and ``{sub}``
stands for the token's subject, so ``notifications/{sub}`` means "my own key".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from .config import Settings
from .errors import Unauthenticated


@dataclass(frozen=True, slots=True)
class Grant:
    """One entry of a token's subscribe or publish list, with ``{sub}`` already filled in."""

    topic: re.Pattern[str]
    key: re.Pattern[str] | None  # None: every key, and events without one

    @classmethod
    def parse(cls, entry: str, subject: str) -> Grant:
        topic, slash, key = entry.partition("/")
        key_pattern = _glob(key, subject) if slash and key != "*" else None
        return cls(_glob(topic, subject), key_pattern)

    def allows(self, topic: str, key: str | None) -> bool:
        if not self.topic.fullmatch(topic):
            return False
        if self.key is None:
            return True
        return key is not None and self.key.fullmatch(key) is not None


def _glob(pattern: str, subject: str) -> re.Pattern[str]:
    parts = (re.escape(part) for part in pattern.replace("{sub}", "\0").split("*"))
    return re.compile(".*".join(parts).replace("\0", re.escape(subject)), re.DOTALL)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified token speaks for and what it may do."""

    subject: str
    subscribe: tuple[Grant, ...]
    publish: tuple[Grant, ...]
    expires_at: float | None

    def may_subscribe(self, topic: str, key: str | None) -> bool:
        return any(grant.allows(topic, key) for grant in self.subscribe)

    def may_publish(self, topic: str, key: str | None) -> bool:
        return any(grant.allows(topic, key) for grant in self.publish)


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token that passed verification, and the times between which it stays valid."""

    principal: Principal
    valid_from: float
    valid_until: float


class TokenVerifier:
    """Checks signature, expiry, not-before and (when configured) audience and issuer.

    A backend sends the same token with every request, and verifying it costs more than the
    rest of a small publish: tokens that passed are remembered (at most ``jwt_cache_size``)
    with the window PyJWT would accept them in, and outside that window a remembered token
    is refused just as PyJWT would refuse it.
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._verified: dict[str, _Verified] = {}
        self._keys: dict[str | None, Any] = {}
        self._algorithms: list[str] = []
        if settings.jwt_secret:
            self._keys[None] = settings.jwt_secret
            self._algorithms.append("HS256")
        if settings.jwt_public_key:
            self._keys.setdefault(None, Path(settings.jwt_public_key).read_text())
            self._algorithms += ["RS256", "ES256"]
        if settings.jwks_file:
            jwks = jwt.PyJWKSet.from_json(Path(settings.jwks_file).read_text())
            for jwk in jwks.keys:
                self._keys[jwk.key_id] = jwk.key
            self._algorithms += ["RS256", "ES256"]
        self._algorithms = sorted(set(self._algorithms))

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def verify(self, token: str) -> Principal:
        """The token's principal; Unauthenticated with a reason for anything else."""
        verified = self._verified.get(token)
        if verified is None:
            verified = self._remember(token, self._decode(token))
        now = self._clock()
        if now < verified.valid_from:
            raise Unauthenticated("the token is not valid yet")
        if now >= verified.valid_until:
            self._verified.pop(token, None)
            raise Unauthenticated("the token has expired")
        return verified.principal

    def _remember(self, token: str, claims: dict[str, Any]) -> _Verified:
        leeway = self._settings.jwt_leeway_s
        # PyJWT's rules, on the integral claims it compares: exp <= now - leeway has
        # expired; nbf or iat > now + leeway is not valid yet.
        starts = [int(claims[name]) for name in ("nbf", "iat") if name in claims]
        verified = _Verified(
            _principal(claims),
            max(starts) - leeway if starts else float("-inf"),
            int(claims["exp"]) + leeway,
        )
        size = self._settings.jwt_cache_size
        if size > 0:
            while len(self._verified) >= size:
                # The oldest entry goes: a token still in use is verified once more.
                del self._verified[next(iter(self._verified))]
            self._verified[token] = verified
        return verified

    def _decode(self, token: str) -> dict[str, Any]:
        if not self.configured:
            raise Unauthenticated("this server accepts no tokens (no key configured)")
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid")) or self._keys.get(None)
            if key is None:
                raise Unauthenticated("the token's key id is unknown")
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._settings.jwt_audience or None,
                issuer=self._settings.jwt_issuer or None,
                leeway=self._settings.jwt_leeway_s,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": bool(self._settings.jwt_audience),
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token is from another issuer") from None
        except jwt.PyJWTError as exc:
            # PyJWT's messages describe the token's structure, never its contents.
            raise Unauthenticated(f"the token is not valid: {exc}") from None
        return claims


def _principal(claims: dict[str, Any]) -> Principal:
    subject = str(claims["sub"])
    herald = claims.get("herald") or {}
    if not isinstance(herald, dict):
        raise Unauthenticated("the token's herald claim is not an object")

    def grants(name: str) -> tuple[Grant, ...]:
        entries = herald.get(name) or []
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise Unauthenticated(f"the token's herald.{name} is not a list of strings")
        return tuple(Grant.parse(entry, subject) for entry in entries)

    expires = claims.get("exp")
    return Principal(
        subject,
        grants("subscribe"),
        grants("publish"),
        float(expires) if isinstance(expires, int | float) else None,
    )
