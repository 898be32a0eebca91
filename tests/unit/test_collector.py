"""service/collector.py: what survives a full collection is frozen until connections close."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from service import collector as collector_module
from service.collector import Collector


class Node:
    """An object in a reference cycle: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collector() -> Iterator[Collector]:
    policy = Collector()
    policy.install()
    yield policy
    policy.uninstall()


def cycle_freed_by_a_full_collection() -> weakref.ref[Node]:
    """A cycle that lives through one full collection (frozen by it), then is dropped."""
    node = Node()
    gc.collect()
    assert gc.get_freeze_count() > 0
    ref = weakref.ref(node)
    del node
    return ref


def test_what_survives_a_full_collection_is_not_walked_again(collector: Collector) -> None:
    ref = cycle_freed_by_a_full_collection()
    gc.collect()
    assert ref() is not None  # frozen: the full collection did not walk it


def test_closed_connections_thaw_what_froze_so_a_full_collection_frees_it(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector_module, "THAW_AFTER_CLOSES", 3)
    ref = cycle_freed_by_a_full_collection()
    collector.connection_closed()
    collector.connection_closed()
    gc.collect()
    assert ref() is not None
    collector.connection_closed()  # the third: thawed
    gc.collect()
    assert ref() is None


def test_a_full_walk_comes_after_so_many_freezes_whatever_the_connections(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector_module, "THAW_AFTER_FREEZES", 3)
    ref = cycle_freed_by_a_full_collection()  # the first freeze
    gc.collect()  # the second
    assert ref() is not None
    gc.collect()  # the third freezes, then thaws everything
    gc.collect()
    assert ref() is None


def test_without_install_nothing_is_frozen_and_closes_are_ignored() -> None:
    policy = Collector()
    policy.connection_closed()
    assert policy.closes == 0
    frozen = gc.get_freeze_count()
    node = Node()
    ref = weakref.ref(node)
    gc.collect()
    assert gc.get_freeze_count() == frozen
    del node
    gc.collect()
    assert ref() is None
