"""service/access.py: where tokens are found and what public and private topics demand."""

from __future__ import annotations

import pytest

from service.access import Access, Credential, credential_from
from service.auth import TokenVerifier
from service.config import Settings
from service.errors import Forbidden, RateLimited, Unauthenticated

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
    values: dict[str, object] = {"jwt_secret": SECRET, "public_topics": "news|chat-.*"}
    configured = Settings(**{**values, **settings})  # type: ignore[arg-type]
    return Access(configured, TokenVerifier(configured))


def test_declared_public_topics_need_no_token_every_other_one_does() -> None:
    policy = access()
    policy.check_subscribe(None, "news", None)
    policy.check_subscribe(None, "chat-eu", "room")
    for private in ("private-inbox", "notifications", "newsroom", "xnews"):
        with pytest.raises(Unauthenticated):
            policy.check_subscribe(None, private, "alice")


def test_with_no_public_pattern_every_topic_needs_a_token() -> None:
    policy = access(public_topics="")
    with pytest.raises(Unauthenticated):
        policy.check_subscribe(None, "news", None)


def test_the_public_pattern_is_matched_in_full() -> None:
    # "^priv" meant as a prefix would leave "privnotes" open under a search; in full it
    # matches only "priv" itself.
    policy = access(public_topics="^pub")
    policy.check_subscribe(None, "pub", None)
    with pytest.raises(Unauthenticated):
        policy.check_subscribe(None, "public-notes", None)


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


def test_creating_a_topic_needs_a_create_grant_and_is_counted_per_subject() -> None:
    policy = access(topic_creations_per_hour=2)
    creator = policy.principal(Credential(token("c", create=["team-*"]), "header"))
    publisher = policy.principal(Credential(token("p", publish=["*"]), "header"))
    with pytest.raises(Unauthenticated):
        policy.check_create(None, "10.0.0.1", "team-a")
    with pytest.raises(Forbidden):
        policy.check_create(publisher, "10.0.0.1", "team-a")
    with pytest.raises(Forbidden):
        policy.check_create(creator, "10.0.0.1", "other")
    policy.check_create(creator, "10.0.0.1", "team-a")
    policy.check_create(creator, "10.0.0.2", "team-b")
    with pytest.raises(RateLimited) as limited:
        policy.check_create(creator, "10.0.0.3", "team-c")
    assert limited.value.retry_after is not None and limited.value.retry_after > 0


def test_open_publishing_creates_topics_counted_per_address() -> None:
    policy = access(publish_open=True, topic_creations_per_hour=1)
    policy.check_create(None, "10.0.0.1", "anything")
    policy.check_create(None, "10.0.0.2", "anything-else")
    with pytest.raises(RateLimited):
        policy.check_create(None, "10.0.0.1", "one-more")


def test_the_policy_line_says_what_is_open_and_never_a_secret() -> None:
    line = access(publish_open=True, allowed_origins=("https://app.example",)).policy()
    assert "'news|chat-.*'" in line and "HS256" in line and "https://app.example" in line
    assert "OPEN TO ANYONE" in line
    assert SECRET not in line
