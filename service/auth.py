"""Tokens: JWTs verified with PyJWT, and the topic grants their ``herald`` claim carries.

A grant is ``topic`` or ``topic/key``; ``*`` matches any run of characters and ``{sub}``
stands for the token's subject, so ``notifications/{sub}`` means "my own key".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import tasks
from .config import Settings
from .errors import Unauthenticated

log = logging.getLogger(__name__)


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
    # Topics it may create by publishing to them (keys play no part).
    create: tuple[Grant, ...] = ()

    def may_subscribe(self, topic: str, key: str | None) -> bool:
        return any(grant.allows(topic, key) for grant in self.subscribe)

    def may_publish(self, topic: str, key: str | None) -> bool:
        return any(grant.allows(topic, key) for grant in self.publish)

    def may_create(self, topic: str) -> bool:
        return any(grant.allows(topic, None) for grant in self.create)


@dataclass(frozen=True, slots=True)
class _Verified:
    """A token that passed verification, and the times between which it stays valid."""

    principal: Principal
    valid_from: float
    valid_until: float


# The algorithms Herald accepts, and the kind of key each must be checked with.
_KEY_TYPES = {"HS256": "oct", "RS256": "RSA", "ES256": "EC"}


def _key_type(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return "EC"
    return "unsupported"


class TokenVerifier:
    """Checks signature, expiry, not-before and (when configured) audience and issuer.

    Each token is checked with the one key its header asks for, and only if that key fits
    its algorithm: HS256 with the shared secret, RS256 and ES256 with the key of its ``kid``
    (from a JWKS file or URL) or else the configured public key. Anything else is a 401.

    A backend sends the same token with every request, and verifying it costs more than the
    rest of a small publish: tokens that passed are remembered (at most ``jwt_cache_size``)
    with the window PyJWT would accept them in, and outside that window a remembered token
    is refused just as PyJWT would refuse it.
    """

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._verified: dict[str, _Verified] = {}
        self._secret = settings.jwt_secret or None
        self._public_key: Any = None
        if settings.jwt_public_key:
            pem = Path(settings.jwt_public_key).read_bytes()
            self._public_key = serialization.load_pem_public_key(pem)
        self._file_keys: dict[str, jwt.PyJWK] = {}
        if settings.jwks_file:
            jwks = jwt.PyJWKSet.from_json(Path(settings.jwks_file).read_text())
            self._file_keys = {jwk.key_id: jwk for jwk in jwks.keys if jwk.key_id}
        self.jwks = (
            JwksUrl(settings.jwks_url, settings.jwks_refresh_s) if settings.jwks_url else None
        )

    @property
    def configured(self) -> bool:
        return bool(self._secret or self._public_key or self._file_keys or self.jwks)

    def describe(self) -> str:
        """What tokens are checked with, for the startup log (never the keys themselves)."""
        methods = []
        if self._secret:
            methods.append("HS256 (shared secret)")
        if self._public_key is not None:
            methods.append(f"{_key_type(self._public_key)} public key file")
        if self._file_keys:
            methods.append(f"JWKS file ({len(self._file_keys)} keys)")
        if self.jwks is not None:
            methods.append("JWKS URL")
        return ", ".join(methods) or "none (no token is accepted)"

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

    def _key(self, header: dict[str, Any]) -> Any:
        """The one key this token may be checked with."""
        algorithm = header.get("alg")
        if algorithm not in _KEY_TYPES:
            raise Unauthenticated(f"the token's algorithm is not one of {', '.join(_KEY_TYPES)}")
        if algorithm == "HS256":
            if self._secret is None:
                raise Unauthenticated("this server accepts no HS256 tokens")
            return self._secret
        kid = header.get("kid")
        if kid is not None:
            jwk = self._file_keys.get(kid) or (self.jwks.key(kid) if self.jwks else None)
            if jwk is None:
                raise Unauthenticated("the token's key id is unknown")
            if jwk.algorithm_name != algorithm:
                raise Unauthenticated("the token's algorithm does not fit its key")
            return jwk.key
        if self._public_key is None:
            raise Unauthenticated(f"this server accepts no {algorithm} tokens without a key id")
        if _key_type(self._public_key) != _KEY_TYPES[algorithm]:
            raise Unauthenticated("the token's algorithm does not fit the server's key")
        return self._public_key

    def _decode(self, token: str) -> dict[str, Any]:
        if not self.configured:
            raise Unauthenticated("this server accepts no tokens (no key configured)")
        try:
            header = jwt.get_unverified_header(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key(header),
                algorithms=[header["alg"]],
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
        except (ValueError, TypeError, KeyError):
            # A key that the token's bytes do not fit (cryptography's own errors).
            raise Unauthenticated("the token is not valid") from None
        return claims


class JwksUrl:
    """Keys published at a JWKS URL, fetched with PyJWT's PyJWKClient off the event loop and
    refreshed every ``refresh_s`` (sooner, at most every cool-down, when a token names a key
    id not seen yet: a key that was just rotated in)."""

    _COOL_DOWN_S = 30.0

    def __init__(self, url: str, refresh_s: float) -> None:
        self._client = jwt.PyJWKClient(url, cache_keys=False, cache_jwk_set=False, timeout=10)
        self._refresh_s = refresh_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_try = -math.inf
        self.loaded = False

    def key(self, kid: str) -> jwt.PyJWK | None:
        found = self._keys.get(kid)
        if found is None and time.monotonic() - self._last_try > self._COOL_DOWN_S:
            self._wake.set()
        return found

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="jwks refresh")

    async def stop(self) -> None:
        await tasks.stop(self._task)
        self._task = None

    async def refresh(self) -> None:
        self._last_try = time.monotonic()
        try:
            jwks = await asyncio.to_thread(self._client.get_jwk_set, True)
        except jwt.PyJWKClientError as exc:
            log.warning("JWKS URL: could not fetch the keys: %s", exc)
            return
        self._keys = {jwk.key_id: jwk for jwk in jwks.keys if jwk.key_id}
        if not self.loaded:
            log.info("JWKS URL: %d keys", len(self._keys))
        self.loaded = True

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_s):
                    await self._wake.wait()
            await self.refresh()


def expiry_timer(
    principal: Principal | None, leeway_s: float, on_expiry: Callable[[], None]
) -> asyncio.TimerHandle | None:
    """A timer calling ``on_expiry`` when ``principal``'s token stops being valid (after
    the leeway), for a connection that outlives it; None without a token or an expiry."""
    if principal is None or principal.expires_at is None:
        return None
    left = principal.expires_at + leeway_s - time.time()
    return asyncio.get_running_loop().call_later(max(0.0, left), on_expiry)


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
        grants("create"),
    )
