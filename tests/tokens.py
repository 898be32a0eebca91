"""Tokens for the tests: signed here, and remembered so the suite can prove none is logged."""

from __future__ import annotations

import time
from typing import Any

import jwt

SECRET = "test-secret-with-enough-entropy-for-hs256-0123456789"
ISSUED: set[str] = set()


def token(
    sub: str = "alice",
    *,
    subscribe: list[str] | None = None,
    publish: list[str] | None = None,
    create: list[str] | None = None,
    ttl: float = 300,
    secret: str = SECRET,
    algorithm: str = "HS256",
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = time.time()
    payload: dict[str, Any] = {
        "sub": sub,
        "exp": int(now + ttl),
        "iat": int(now),
        "herald": {"subscribe": subscribe or [], "publish": publish or [], "create": create or []},
        **claims,
    }
    encoded = jwt.encode(payload, secret, algorithm=algorithm, headers=headers)
    ISSUED.add(encoded)
    return encoded
