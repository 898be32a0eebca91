"""service/topics.py: which topics are exposed, and the partition of a key."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from service.config import Settings, load_settings
from service.topics import TopicPolicy, partition_for_key

EVERYTHING = TopicPolicy(Settings(topics=".*"))


def policy(**overrides: object) -> TopicPolicy:
    return TopicPolicy(Settings(**overrides))  # type: ignore[arg-type]


# -- exposure -------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["__consumer_offsets", "__transaction_state", "__anything"])
def test_internal_topics_are_never_exposed(topic: str) -> None:
    assert not EVERYTHING.exposed(topic)
    assert not policy(topic_list=(topic,)).exposed(topic)


@pytest.mark.parametrize("topic", ["notifications", "orders.v1", "user_events-2", "A9"])
def test_the_default_pattern_exposes_ordinary_names(topic: str) -> None:
    assert policy().exposed(topic)


@pytest.mark.parametrize("topic", ["-leading-dash", ".hidden", "_private"])
def test_the_default_pattern_wants_a_letter_or_digit_first(topic: str) -> None:
    assert not policy().exposed(topic)


def test_a_list_exposes_exactly_its_names() -> None:
    listed = TopicPolicy(load_settings({"HERALD_TOPIC_LIST": "orders,payments"}))
    assert listed.exposed("orders")
    assert listed.exposed("payments")
    assert not listed.exposed("audit")
    assert not listed.exposed("orders2")


def test_a_regex_exposes_only_full_matches() -> None:
    pattern = policy(topics=r"app\.[a-z]+")
    assert pattern.exposed("app.orders")
    assert not pattern.exposed("app.orders2")
    assert not pattern.exposed("myapp.orders")
    assert not pattern.exposed("other")


def test_a_list_and_a_regex_together_expose_both() -> None:
    both = policy(topics=r"app\..+", topic_list=("legacy",))
    assert both.exposed("app.x")
    assert both.exposed("legacy")
    assert not both.exposed("other")


def test_an_empty_pattern_without_list_exposes_nothing() -> None:
    assert not policy(topics="").exposed("orders")


@pytest.mark.parametrize("topic", ["", "a b", "a/b", "ä", "tab\t", "orders\n", "x" * 250])
def test_illegal_kafka_names_are_never_exposed(topic: str) -> None:
    assert not EVERYTHING.exposed(topic)
    assert not policy(topic_list=(topic,)).exposed(topic)


def test_the_longest_legal_name_is_exposed() -> None:
    assert EVERYTHING.exposed("x" * 249)


@pytest.mark.parametrize("topic", [".", ".."])
def test_dot_and_dot_dot_are_never_exposed(topic: str) -> None:
    # Regression: topics.py _LEGAL used to accept "." and "..", which Kafka's Topic.validate
    # rejects; with a permissive HERALD_TOPICS (or a list naming them) they are exposed and a
    # publish tries to create a topic Kafka refuses.
    assert not EVERYTHING.exposed(topic)


# -- partition_for_key ----------------------------------------------------------------------

keys = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(key=keys, partitions=st.integers(min_value=1, max_value=1024))
def test_partition_for_key_equals_aiokafkas_default_partitioner(key: str, partitions: int) -> None:
    every = list(range(partitions))
    expected = DefaultPartitioner()(key.encode(), every, every)
    assert partition_for_key(key, partitions) == expected


@settings(max_examples=200, deadline=None)
@given(key=keys, partitions=st.integers(min_value=1, max_value=1024))
def test_partition_for_key_is_a_valid_partition(key: str, partitions: int) -> None:
    assert 0 <= partition_for_key(key, partitions) < partitions


def test_one_partition_puts_every_key_on_partition_zero() -> None:
    assert {partition_for_key(f"user-{i}", 1) for i in range(50)} == {0}


def test_keys_spread_over_partitions() -> None:
    assert {partition_for_key(f"user-{i}", 3) for i in range(50)} == {0, 1, 2}
