"""service/access.py: where tokens are found and what public and private topics demand."""

from __future__ import annotations

import pytest

from service.access import Access, Credential, credential_from
from service.auth import TokenVerifier
from service.config import Settings
from service.errors import Forbidden, Unauthenticated

from ..tokens import SECRET, token


def test_a_header_wins_over_the_query_and_the_cookie() -> None:
    found = credential_from(
        "Bearer h", {"access_token": "q"}, {"herald_token": "c"}, "herald_token"
    )
    assert found == Credential("h", "header")
    assert credential_from(None, {"access_token": "q"}, {"herald_token": "c"}, "herald_token") == (
        Credential("q", "query")
    )
    assert credential_from("Basic x", {}, {"herald_token": "c"}, "herald_token") == Credential(
        "c", "cookie"
    )
    assert credential_from(None, {}, {}, "herald_token") is None


def access(**settings: object) -> Access:
    configured = Settings(jwt_secret=SECRET, private_topics="private-.*", **settings)  # type: ignore[arg-type]
    return Access(configured, TokenVerifier(configured))


def test_public_topics_need_no_token_private_ones_do() -> None:
    policy = access()
    policy.check_subscribe(None, "news", None)
    with pytest.raises(Unauthenticated):
        policy.check_subscribe(None, "private-inbox", "alice")


def test_a_private_key_is_readable_only_with_a_matching_grant() -> None:
    policy = access()
    alice = policy.principal(
        Credential(token("alice", subscribe=["private-inbox/{sub}"]), "header")
    )
    policy.check_subscribe(alice, "private-inbox", "alice")
    with pytest.raises(Forbidden):
        policy.check_subscribe(alice, "private-inbox", "bob")
    with pytest.raises(Forbidden):
        policy.check_subscribe(alice, "private-inbox", None)


def test_publishing_needs_a_grant_for_every_key_unless_open() -> None:
    policy = access()
    with pytest.raises(Unauthenticated):
        policy.check_publish(None, "news", [None])
    writer = policy.principal(Credential(token("w", publish=["news/a"]), "header"))
    policy.check_publish(writer, "news", ["a", "a"])
    with pytest.raises(Forbidden):
        policy.check_publish(writer, "news", ["a", "b"])
    access(publish_open=True).check_publish(None, "news", [None, "x"])


def test_a_bad_token_is_401_even_where_none_is_needed() -> None:
    with pytest.raises(Unauthenticated):
        access().principal(Credential("garbage", "query"))
