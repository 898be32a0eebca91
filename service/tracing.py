"""OpenTelemetry traces of one event's path: publish → Kafka → consume → fan-out.

Off unless the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set;
the SDK reads every other ``OTEL_*`` variable itself. A publish (HTTP or WebSocket) starts a
span, or continues the client's W3C ``traceparent``, and writes its own ``traceparent`` into
each Kafka record's headers. Every instance that consumes such a record (whoever produced it)
records a consume span and, when the topic's subscribers get it, one fan-out span per event
and topic, both in the publish's trace: never a span per subscriber. Off, each hook costs one
check.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import __version__
from .config import ConfigError
from .errors import HeraldError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from .events import Event
    from .kafka import Record

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class TracingUnavailable(ConfigError):
    """Tracing was asked for, but the OpenTelemetry packages are not installed."""


class Tracing:
    """Herald's spans, through ``provider`` (None: tracing off, and every hook a no-op)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self.on = provider is not None
        if provider is not None:
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )

            self._tracer = provider.get_tracer("herald", __version__)
            self._propagator = TraceContextTextMapPropagator()

    @contextmanager
    def publish(
        self, topic: str, count: int, transport: str, parent: str | None
    ) -> Iterator[list[tuple[str, bytes]]]:
        """A span around one publish of ``count`` events, continuing ``parent`` (a W3C
        traceparent) if given; yields the headers its records carry (none when off)."""
        if not self.on:
            yield []
            return
        from opentelemetry.trace import SpanKind, Status, StatusCode

        context = self._propagator.extract({TRACEPARENT: parent} if parent else {})
        with self._tracer.start_as_current_span(
            f"publish {topic}",
            context=context,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
                "messaging.batch.message_count": count,
                "herald.transport": transport,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier)
            try:
                yield [(name, value.encode()) for name, value in carrier.items()]
            except HeraldError as exc:
                # A refusal (4xx) or Kafka away (503): said on the span, not a traceback.
                span.set_status(Status(StatusCode.ERROR, exc.detail))
                span.set_attribute("http.response.status_code", exc.status)
                raise

    def consumed(self, topic: str, records: Sequence[Record]) -> None:
        """A consume span per trace context among ``records`` (one partition's fetch): the
        records of one publish (a batch POST) share one."""
        if not self.on:
            return
        from opentelemetry.trace import Link, SpanKind, get_current_span

        by_parent: dict[bytes, list[Record]] = {}
        for record in records:
            parent = _traceparent(record.headers)
            if parent is not None:
                by_parent.setdefault(parent, []).append(record)
        for parent, traced in by_parent.items():
            context = self._propagator.extract({TRACEPARENT: parent.decode("latin-1")})
            span_context = get_current_span(context).get_span_context()
            span = self._tracer.start_span(
                f"consume {topic}",
                context=context,
                kind=SpanKind.CONSUMER,
                links=[Link(span_context)],
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "receive",
                    "messaging.destination.name": topic,
                    "messaging.destination.partition.id": str(traced[0].partition),
                    "messaging.kafka.offset": traced[0].offset,
                    "messaging.batch.message_count": len(traced),
                },
            )
            span.end()

    @contextmanager
    def fan_out(self, topic: str, events: Sequence[Event], subscribers: int) -> Iterator[None]:
        """A span around a fan-out to ``subscribers`` per trace context among ``events``:
        one per event, or per publish for the events of one batch POST fanned out together."""
        traced: dict[bytes, int] = {}
        if self.on:
            for event in events:
                if event.trace is not None:
                    traced[event.trace] = traced.get(event.trace, 0) + 1
        if not traced:
            yield
            return
        from opentelemetry.trace import SpanKind

        spans = [
            self._tracer.start_span(
                f"fan-out {topic}",
                context=self._propagator.extract({TRACEPARENT: parent.decode("latin-1")}),
                kind=SpanKind.INTERNAL,
                attributes={
                    "messaging.destination.name": topic,
                    "herald.subscribers": subscribers,
                    "herald.event_count": count,
                },
            )
            for parent, count in traced.items()
        ]
        try:
            yield
        finally:
            for span in spans:
                span.end()

    def shutdown(self) -> None:
        """Send what is still buffered, then stop (at the end of the process)."""
        if self._provider is not None:
            self._provider.shutdown()


def _traceparent(headers: Sequence[tuple[str, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == TRACEPARENT:
            return value
    return None


def traceparent_of(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """A request's ``traceparent`` header (ASGI headers), if any."""
    for name, value in headers:
        if name == b"traceparent":
            return value.decode("latin-1")
    return None


def from_environment(environ: Mapping[str, str] | None = None) -> Tracing:
    """Tracing as the ``OTEL_*`` variables ask: off unless an OTLP endpoint is set."""
    env = os.environ if environ is None else environ
    endpoint = next((env[name] for name in _ENDPOINTS if env.get(name)), None)
    if endpoint is None or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return Tracing()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        # Asked for and impossible: fail at startup rather than run untraced unawares.
        raise TracingUnavailable(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed:"
            " pip install 'herald[tracing]'"
        ) from None
    # Which process a span comes from: every instance (and worker) reads every record.
    attributes: dict[str, Any] = {
        "service.version": __version__,
        "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
    }
    if not env.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = "herald"
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # Scheme, host and port only: credentials have no place in a log line.
    where = urlsplit(endpoint)
    log.info("tracing: spans go to %s://%s over OTLP/HTTP", where.scheme, where.hostname)
    return Tracing(provider)
