"""Prometheus metrics, one registry per app so that tests and workers do not share state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Tally:
    """A count kept as a plain int where a Counter (with its lock) would cost too much: one
    per delivery on the fan-out path. Metrics.flush adds it to its counter."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class Metrics:
    """The counters and gauges Herald exports on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.published = Counter(
            "herald_events_published", "Events acknowledged by Kafka", registry=self.registry
        )
        self.publish_failures = Counter(
            "herald_publish_failures", "Publish requests answered 503", registry=self.registry
        )
        self.consumed = Counter(
            "herald_records_consumed", "Records read from Kafka", registry=self.registry
        )
        self.deliveries = Counter(
            "herald_deliveries",
            "Events written to clients",
            ["transport"],
            registry=self.registry,
        )
        # Deliveries written straight from the fan-out (transports/direct.py), by transport.
        self.direct_deliveries = {"ws": Tally(), "sse": Tally()}
        self.connections = Gauge(
            "herald_connections",
            "Open streaming connections",
            ["transport"],
            registry=self.registry,
        )
        self.lagging = Counter(
            "herald_subscribers_lagging",
            "Connections closed because their queue overflowed",
            registry=self.registry,
        )
        self.requests = Counter(
            "herald_http_requests",
            "HTTP requests answered",
            ["endpoint", "status"],
            registry=self.registry,
        )
        # Prometheus looks a labelled child up under a lock: each one is kept (routes x
        # statuses).
        self._answered: dict[tuple[str | None, int], Counter] = {}
        self.long_polls = Gauge(
            "herald_long_polls_waiting",
            "History requests held until an event arrives (wait=N)",
            registry=self.registry,
        )
        self.purges = Counter(
            "herald_cache_purges",
            "Purge requests sent to the CDN, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.broadcasters = Gauge(
            "herald_broadcasters",
            "Topics this instance keeps a broadcaster for (the topics it reads, and names a"
            " client waits on before they exist)",
            registry=self.registry,
        )
        self.kafka_up = Gauge(
            "herald_kafka_up",
            "1 when the last Kafka metadata refresh succeeded",
            registry=self.registry,
        )
        self.kafka_connect_failures = Counter(
            "herald_kafka_connect_failures_total",
            "Times the consumer could not connect to Kafka, or lost it, and started over"
            " (every second while it lasts)",
            registry=self.registry,
        )

    def answered(self, endpoint: str | None, status: int) -> None:
        """Count one HTTP answer: what the origin answered per route (behind a CDN, what the
        edge let through)."""
        key = (endpoint, status)
        counter = self._answered.get(key)
        if counter is None:
            counter = self._answered[key] = self.requests.labels(
                endpoint or "unrouted", str(status)
            )
        counter.inc()

    def flush(self) -> None:
        """Move the tallies into their counters (after each fan-out, and before an export)."""
        for transport, tally in self.direct_deliveries.items():
            if tally.count:
                self.deliveries.labels(transport).inc(tally.count)
                tally.count = 0

    def exposition(self) -> bytes:
        self.flush()
        return generate_latest(self.registry)
