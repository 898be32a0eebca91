"""Prometheus metrics, one registry per app so that tests and workers do not share state."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

# Upper bounds (seconds) of the delivery latency buckets: from a fast fan-out to a consumer
# that fell a minute behind.
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_time = time.time
_bisect = bisect_left
_BUCKET_NAMES = (*(str(bound) for bound in LATENCY_BOUNDS), "+Inf")
# Partitions listed one by one in the lag gauges: the most behind only, so the label set
# stays bounded whatever the number of topics.
LAG_PARTITIONS_LISTED = 10


class Tally:
    """A count kept as a plain int where a Counter (with its lock) would cost too much: one
    per delivery on the fan-out path. Metrics.flush adds it to its counter."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class Latency:
    """Publish-to-delivery latency of one transport: the age of a record (its Kafka
    timestamp) when a write carrying it reached the socket, counted once per delivery.

    A histogram's observe() per delivery would cost a lock and a call for each of a
    fan-out's thousand sockets; one write adds its whole count to one bucket instead,
    with the age of the oldest event it carries (an upper bound for the others).
    """

    __slots__ = ("buckets", "total_s")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.total_s = 0.0

    def add(self, timestamp_ms: int, deliveries: int) -> None:
        """``deliveries`` written now of events as old as ``timestamp_ms`` (or newer)."""
        if timestamp_ms <= 0:
            return  # a producer that set no timestamp: no age to tell
        # (On every direct write of a fan-out: kept to a few operations.)
        age = _time() - timestamp_ms * 0.001
        if age < 0.0:
            age = 0.0
        self.buckets[_bisect(LATENCY_BOUNDS, age)] += deliveries
        self.total_s += age * deliveries


class _LatencyCollector(Collector):
    def __init__(self, by_transport: dict[str, Latency]) -> None:
        self._by_transport = by_transport

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "herald_delivery_latency_seconds",
            "Record timestamp (the publish) to the write of the event to a client, per"
            " delivery, live events only (catch-up reads and replays excluded)",
            labels=["transport"],
        )
        for transport, latency in self._by_transport.items():
            cumulative, buckets = 0, []
            for bound, count in zip(_BUCKET_NAMES, latency.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric([transport], buckets, latency.total_s)
        yield family


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
        self.latency = {"ws": Latency(), "sse": Latency(), "poll": Latency()}
        self.registry.register(_LatencyCollector(self.latency))
        self.subscriptions = Gauge(
            "herald_subscriptions",
            "Subscriptions of open streaming connections (a WebSocket may hold several)",
            ["transport"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "herald_events_dropped",
            "Events not delivered, by reason: duplicate (a second copy of an idempotent"
            " publish), superseded (a newer event of its key took its place, mode=latest)",
            ["reason"],
            registry=self.registry,
        )
        # Superseded events are counted where they are replaced (the outbox), per event.
        self.superseded = Tally()
        self.consumer_lag_records = Gauge(
            "herald_consumer_lag_records",
            "Records in Kafka this instance has not read yet, over every exposed partition",
            registry=self.registry,
        )
        self.consumer_lag_seconds = Gauge(
            "herald_consumer_lag_seconds",
            "How long the oldest record this instance has not read yet has waited (0 when"
            " it is at the head)",
            registry=self.registry,
        )
        self.partition_lag_records = Gauge(
            "herald_partition_lag_records",
            f"Records not read yet, for the {LAG_PARTITIONS_LISTED} partitions most behind",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.partition_lag_seconds = Gauge(
            "herald_partition_lag_seconds",
            f"How long the oldest unread record has waited, for the {LAG_PARTITIONS_LISTED}"
            " partitions most behind",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.lag_notice = Gauge(
            "herald_lag_notice",
            "1 while this instance tells its clients that it lags behind Kafka",
            registry=self.registry,
        )
        self.catch_up_reads = Counter(
            "herald_catch_up_reads",
            "Reads of a topic's past from Kafka (resumes the ring no longer covers)",
            registry=self.registry,
        )
        self.catch_up_active = Gauge(
            "herald_catch_up_active", "Catch-up reads running now", registry=self.registry
        )
        self.catch_up_waiting = Gauge(
            "herald_catch_up_waiting",
            "Catch-up reads waiting for a reader (HERALD_CATCHUP_READERS)",
            registry=self.registry,
        )
        self.kafka_errors = Counter(
            "herald_kafka_errors",
            "Kafka requests that failed, by client: producer (publishes), consumer (the live"
            " feed), reader (catch-up reads and look-ups), admin (topic metadata)",
            ["client"],
            registry=self.registry,
        )
        self.broadcasters_idle = Gauge(
            "herald_broadcasters_idle",
            "Broadcasters with no subscriber (topics read only for their ring)",
            registry=self.registry,
        )
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
        if self.superseded.count:
            self.dropped.labels("superseded").inc(self.superseded.count)
            self.superseded.count = 0

    def exposition(self) -> bytes:
        self.flush()
        return generate_latest(self.registry)
