"""service/server.py: process setup that does not need a running server."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.collector import COLLECTOR
from service.config import load_settings
from service.server import hypercorn_config, tune_garbage_collector
from tests.certificates import quic_environ


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


def test_only_the_process_that_serves_quic_binds_it_but_every_one_advertises_it(
    tmp_path: Path,
) -> None:
    settings = load_settings(quic_environ(tmp_path))
    serving, other = hypercorn_config(settings), hypercorn_config(settings, quic=False)
    assert serving.quic_bind == ["127.0.0.1:8443"] and other.quic_bind == []
    assert serving.alt_svc_headers == other.alt_svc_headers == ['h3=":8443"; ma=86400']
    assert hypercorn_config(load_settings({})).alt_svc_headers == []
