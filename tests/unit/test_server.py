"""service/server.py: process setup that does not need a running server."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from service.collector import COLLECTOR
from service.server import tune_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    COLLECTOR.uninstall()
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_the_collector_runs_after_the_threshold_and_skips_what_lived_through_startup() -> None:
    survivor = [object()]  # alive before the tuning, like the app
    tune_garbage_collector(100_000)
    assert gc.get_threshold() == (100_000, 10, 10)
    # Frozen: no generation a collection walks holds it any more.
    assert gc.is_tracked(survivor)
    assert not any(tracked is survivor for tracked in gc.get_objects())


@pytest.mark.usefixtures("restored_gc")
def test_a_zero_threshold_keeps_pythons_own() -> None:
    before = gc.get_threshold()
    tune_garbage_collector(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_gc")
def test_the_freeze_and_thaw_policy_is_installed() -> None:
    tune_garbage_collector(0)
    assert COLLECTOR.installed
