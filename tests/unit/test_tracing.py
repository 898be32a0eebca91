"""service/tracing.py: on only when an OTLP endpoint is set, and never silently off when it is."""

from __future__ import annotations

import sys

import pytest

from service.config import ConfigError
from service.tracing import Tracing, from_environment


def test_tracing_is_off_without_an_endpoint_and_when_disabled() -> None:
    assert not from_environment({}).on
    assert not from_environment({"OTEL_SERVICE_NAME": "x"}).on
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
    assert not from_environment(disabled).on


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_an_endpoint_turns_it_on(variable: str) -> None:
    tracing = from_environment({variable: "http://127.0.0.1:9/"})
    try:
        assert tracing.on
    finally:
        tracing.shutdown()


def test_an_endpoint_without_the_packages_is_a_startup_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(ConfigError, match=r"herald\[tracing\]"):
        from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})


def test_off_the_hooks_do_nothing() -> None:
    tracing = Tracing()
    with tracing.publish(
        "t", 1, "http", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ) as headers:
        assert headers == []
    tracing.consumed("t", [])
    with tracing.fan_out("t", [], 10):
        pass
