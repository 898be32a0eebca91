"""service/auth.py: token verification and the grants of the herald claim."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.auth import Grant, TokenVerifier
from service.config import Settings
from service.errors import Unauthenticated

from ..tokens import SECRET, token


def verifier(**settings: object) -> TokenVerifier:
    return TokenVerifier(Settings(jwt_secret=SECRET, **settings))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entry", "topic", "key", "allowed"),
    [
        ("news", "news", None, True),
        ("news", "news", "any", True),
        ("news", "newsroom", None, False),
        ("news*", "newsroom", "k", True),
        ("*", "anything", None, True),
        ("notifications/{sub}", "notifications", "alice", True),
        ("notifications/{sub}", "notifications", "bob", False),
        ("notifications/{sub}", "notifications", None, False),
        ("notifications/*", "notifications", None, True),
        ("chat.*/room-*", "chat.eu", "room-1", True),
        ("chat.*/room-*", "chat.eu", "lobby", False),
        ("a.b", "aXb", None, False),  # a dot is a dot, not any character
    ],
)
def test_grant_patterns(entry: str, topic: str, key: str | None, allowed: bool) -> None:
    assert Grant.parse(entry, "alice").allows(topic, key) is allowed


def test_sub_is_taken_literally_inside_a_pattern() -> None:
    grant = Grant.parse("inbox/{sub}", "a.*")
    assert grant.allows("inbox", "a.*") and not grant.allows("inbox", "abc")


def test_a_valid_token_carries_its_grants() -> None:
    principal = verifier().verify(token("alice", subscribe=["inbox/{sub}"], publish=["news"]))
    assert principal.subject == "alice"
    assert principal.may_subscribe("inbox", "alice") and not principal.may_subscribe("inbox", "bob")
    assert principal.may_publish("news", None) and not principal.may_publish("inbox", "alice")
    assert principal.expires_at is not None and principal.expires_at > time.time()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: token(ttl=-120), "expired"),
        (lambda: token(nbf=int(time.time()) + 3600), "not valid yet"),
        (lambda: token(secret="another-secret-of-sufficient-length-0123456789"), "not valid"),
        (lambda: token(aud="someone-else", iss="issuer"), "audience"),
        (lambda: token(aud="herald", iss="evil"), "issuer"),
        (lambda: "not.a.token", "not valid"),
        (lambda: jwt.encode({"sub": "x"}, SECRET, algorithm="HS256"), "not valid"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(make: object, reason: str) -> None:
    checker = verifier(jwt_audience="herald", jwt_issuer="issuer", jwt_leeway_s=5.0)
    with pytest.raises(Unauthenticated) as refused:
        checker.verify(make())  # type: ignore[operator]
    assert reason in refused.value.detail


def test_leeway_accepts_a_token_that_just_expired() -> None:
    assert verifier(jwt_leeway_s=60.0).verify(token(ttl=-10)).subject == "alice"


def test_a_malformed_herald_claim_is_refused() -> None:
    raw = jwt.encode(
        {"sub": "a", "exp": int(time.time()) + 60, "herald": {"subscribe": "news"}}, SECRET
    )
    with pytest.raises(Unauthenticated):
        verifier().verify(raw)


def test_rs256_with_a_public_key_file(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "public.pem").write_bytes(pem)
    checker = TokenVerifier(Settings(jwt_public_key=str(tmp_path / "public.pem")))
    raw = token("carol", secret=private, algorithm="RS256")  # type: ignore[arg-type]
    assert checker.verify(raw).subject == "carol"
    with pytest.raises(Unauthenticated):
        checker.verify(token("carol"))  # HS256 is not accepted with only a public key


def test_es256_from_a_jwks_file_by_key_id(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    checker = TokenVerifier(Settings(jwks_file=str(tmp_path / "jwks.json")))
    raw = token("dave", secret=private, algorithm="ES256", headers={"kid": "k1"})  # type: ignore[arg-type]
    assert checker.verify(raw).subject == "dave"
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(Unauthenticated):
        checker.verify(token("dave", secret=other, algorithm="ES256", headers={"kid": "k1"}))  # type: ignore[arg-type]


def test_without_keys_every_token_is_refused() -> None:
    with pytest.raises(Unauthenticated):
        TokenVerifier(Settings()).verify(token())


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def counting_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens PyJWT is asked to verify from now on, in order."""
    decoded: list[str] = []
    decode = jwt.decode

    def counted(token: str, *args: object, **kwargs: object) -> object:
        decoded.append(token)
        return decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counted)
    return decoded


def test_a_verified_token_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = counting_decodes(monkeypatch)
    checker = verifier()
    raw = token("alice", publish=["news"])
    first, second = checker.verify(raw), checker.verify(raw)
    assert second is first and decoded == [raw]


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    clock = Clock()
    checker = TokenVerifier(Settings(jwt_secret=SECRET, jwt_leeway_s=5.0), clock)
    raw = token(ttl=60)
    exp = int(jwt.decode(raw, options={"verify_signature": False})["exp"])
    assert checker.verify(raw).subject == "alice"
    clock.now = exp + 4.9  # within the leeway, as PyJWT would accept it
    assert checker.verify(raw).subject == "alice"
    clock.now = exp + 5.0
    with pytest.raises(Unauthenticated) as refused:
        checker.verify(raw)
    assert "expired" in refused.value.detail


def test_a_remembered_token_is_refused_before_its_not_before() -> None:
    clock = Clock()
    checker = TokenVerifier(Settings(jwt_secret=SECRET, jwt_leeway_s=5.0), clock)
    raw = token(nbf=int(clock.now) + 3)  # early, but within the leeway
    assert checker.verify(raw).subject == "alice"
    clock.now = int(clock.now) + 3 - 5.1  # the clock stepped back
    with pytest.raises(Unauthenticated) as refused:
        checker.verify(raw)
    assert "not valid yet" in refused.value.detail


def test_another_token_is_verified_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    checker = verifier()
    good = token("alice", publish=["news"])
    assert checker.verify(good).may_publish("news", None)
    decoded = counting_decodes(monkeypatch)
    forged = good.rsplit(".", 1)[0] + "." + token("alice").rsplit(".", 1)[1]
    with pytest.raises(Unauthenticated):
        checker.verify(forged)
    bob = checker.verify(token("bob", publish=["other"]))
    assert bob.subject == "bob" and not bob.may_publish("news", None)
    assert len(decoded) == 2


def test_a_refused_token_is_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    checker = verifier()
    raw = token(ttl=-120)
    decoded = counting_decodes(monkeypatch)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            checker.verify(raw)
    assert decoded == [raw, raw]


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = counting_decodes(monkeypatch)
    checker = verifier(jwt_cache_size=2)
    first, second, third = (token(name) for name in ("a", "b", "c"))
    for raw in (first, second, third, third, second, first):
        checker.verify(raw)
    # The oldest went when the third came; coming back, it pushed the next oldest out.
    assert decoded == [first, second, third, first]


def test_a_cache_size_of_zero_verifies_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = counting_decodes(monkeypatch)
    checker = verifier(jwt_cache_size=0)
    raw = token()
    checker.verify(raw)
    checker.verify(raw)
    assert decoded == [raw, raw]
