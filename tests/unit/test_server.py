"""service/server.py: process setup that does not need a running server."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from service.collector import COLLECTOR
from service.config import Settings
from service.server import hypercorn_config, tune_garbage_collector


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


TLS = {"tls_cert": "cert.pem", "tls_key": "key.pem"}


def test_without_quic_nothing_is_advertised() -> None:
    config = hypercorn_config(Settings(**TLS))
    assert (config.quic_bind, config.alt_svc_headers) == ([], [])


def test_one_process_serves_quic_on_its_bind_and_advertises_it() -> None:
    config = hypercorn_config(Settings(quic_bind="127.0.0.1:8443", **TLS))
    assert config.quic_bind == ["127.0.0.1:8443"]
    assert config.alt_svc_headers == ['h3=":8443"; ma=86400']


def test_of_the_workers_only_the_one_given_the_udp_socket_serves_quic() -> None:
    settings = Settings(quic_bind="0.0.0.0:8443", quic_public_port=443, **TLS)
    first, other = hypercorn_config(settings, 3, 4), hypercorn_config(settings, 3)
    assert (first.quic_bind, other.quic_bind) == (["fd://4"], [])
    # Every worker's TCP answers send browsers to the one serving it.
    assert first.alt_svc_headers == other.alt_svc_headers == ['h3=":443"; ma=86400']
