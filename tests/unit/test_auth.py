"""service/auth.py: token verification and the grants of the herald claim."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.auth import Grant, TokenVerifier
from service.config import Settings
from service.errors import Unauthenticated

from ..asgi_server import serve_asgi
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


def _pem(tmp_path: Path, private: Any) -> str:
    path = tmp_path / "public.pem"
    path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(path)


def _jwks(tmp_path: Path, **keys: Any) -> str:
    entries = []
    for kid, private in keys.items():
        kind = jwt.algorithms.RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else None
        kind = kind or jwt.algorithms.ECAlgorithm
        entries.append({**json.loads(kind.to_jwk(private.public_key())), "kid": kid})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": entries}))
    return str(path)


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def forged(header: dict[str, Any], hmac_key: bytes) -> str:
    """A token with any header, HMAC-SHA256-signed with ``hmac_key`` (what an attacker can
    make: PyJWT itself refuses to sign such tokens)."""

    def part(value: object) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims = {"sub": "mallory", "exp": int(time.time()) + 60}
    signing_input = f"{part(header)}.{part(claims)}"
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        # ES256 header naming an RSA key of the JWKS.
        (lambda: token(secret=EC_KEY, algorithm="ES256", headers={"kid": "rsa"}), "does not fit"),
        # HS256 keyed with the public RSA key's PEM, naming it: checked with the secret only.
        (lambda: forged({"alg": "HS256", "kid": "rsa"}, RSA_PEM), "not valid"),
        (lambda: forged({"alg": "HS256"}, RSA_PEM), "not valid"),
        # RS256 signed with the RSA key but claiming the EC key's id.
        (lambda: token(secret=RSA_KEY, algorithm="RS256", headers={"kid": "ec"}), "does not fit"),
        # ES256 without a key id while the configured public key is RSA.
        (lambda: token(secret=EC_KEY, algorithm="ES256"), "does not fit"),
        # An algorithm Herald does not take at all.
        (lambda: forged({"alg": "HS512"}, SECRET.encode()), "algorithm"),
        (lambda: forged({"alg": "none"}, b""), "algorithm"),
        (lambda: forged({"typ": "JWT"}, SECRET.encode()), "algorithm"),
    ],
)
def test_a_token_whose_algorithm_does_not_fit_its_key_is_a_401(
    tmp_path: Path, make: Any, reason: str
) -> None:
    checker = TokenVerifier(
        Settings(
            jwt_secret=SECRET,
            jwt_public_key=_pem(tmp_path, RSA_KEY),
            jwks_file=_jwks(tmp_path, rsa=RSA_KEY, ec=EC_KEY),
        )
    )
    with pytest.raises(Unauthenticated) as refused:
        checker.verify(make())
    assert reason in refused.value.detail


def test_with_a_secret_and_a_public_key_each_algorithm_uses_its_own(tmp_path: Path) -> None:
    checker = TokenVerifier(Settings(jwt_secret=SECRET, jwt_public_key=_pem(tmp_path, EC_KEY)))
    assert checker.verify(token("hs")).subject == "hs"
    assert checker.verify(token("es", secret=EC_KEY, algorithm="ES256")).subject == "es"
    # A token signed with the secret but claiming ES256 is checked against the key: refused.
    with pytest.raises(Unauthenticated):
        checker.verify(forged({"alg": "ES256"}, SECRET.encode()))


async def test_keys_from_a_jwks_url_are_fetched_and_refreshed_for_a_new_key_id() -> None:
    served = {"keys": []}  # type: ignore[var-annotated]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = json.dumps(served).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    first = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))
    served["keys"] = [{**first, "kid": "one"}]
    async with serve_asgi(app) as url:
        checker = TokenVerifier(Settings(jwks_url=f"{url}/jwks.json"))
        assert checker.jwks is not None and not checker.jwks.loaded
        await checker.jwks.start()
        try:
            assert checker.jwks.loaded
            raw = token("k", secret=EC_KEY, algorithm="ES256", headers={"kid": "one"})
            assert checker.verify(raw).subject == "k"
            # A key rotated in: unknown at first (a 401), known after the refresh it asks for.
            rotated = ec.generate_private_key(ec.SECP256R1())
            served["keys"].append(
                {
                    **json.loads(jwt.algorithms.ECAlgorithm.to_jwk(rotated.public_key())),
                    "kid": "two",
                }
            )
            fresh = token("k", secret=rotated, algorithm="ES256", headers={"kid": "two"})
            with pytest.raises(Unauthenticated):
                checker.verify(fresh)
            await checker.jwks.refresh()
            assert checker.verify(fresh).subject == "k"
        finally:
            await checker.jwks.stop()


def test_the_startup_description_names_the_methods_never_the_keys(tmp_path: Path) -> None:
    described = TokenVerifier(
        Settings(jwt_secret=SECRET, jwt_public_key=_pem(tmp_path, RSA_KEY))
    ).describe()
    assert "HS256" in described and "RSA public key" in described
    assert SECRET not in described


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
