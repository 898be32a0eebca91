"""service/metrics.py: the latency histogram a write at a time, and tallies flushed."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from service.metrics import LATENCY_BOUNDS, Latency, Metrics


def family(metrics: Metrics, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    for found in text_string_to_metric_families(metrics.exposition().decode()):
        if found.name == name:
            return {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for sample in found.samples
            }
    raise AssertionError(f"{name} is not exported")


def test_a_write_adds_its_deliveries_to_the_bucket_of_its_age() -> None:
    latency = Latency()
    now_ms = int(time.time() * 1000)
    latency.add(now_ms - 30, 1000)  # 30 ms: the 0.05 bucket
    latency.add(now_ms - 3000, 10)  # 3 s: the 5.0 bucket
    latency.add(-1, 5)  # no timestamp: nothing to tell
    assert sum(latency.buckets) == 1010
    assert latency.buckets[LATENCY_BOUNDS.index(0.05)] == 1000
    assert latency.buckets[LATENCY_BOUNDS.index(5.0)] == 10
    assert 60.0 <= latency.total_s < 65.0  # 1000 x 30 ms + 10 x 3 s


def test_the_histogram_is_exported_cumulative_per_transport() -> None:
    metrics = Metrics()
    now_ms = int(time.time() * 1000)
    metrics.latency["ws"].add(now_ms - 30, 4)
    metrics.latency["sse"].add(now_ms - 3000, 2)
    samples = family(metrics, "herald_delivery_latency_seconds")
    ws = (("transport", "ws"),)
    assert samples[("herald_delivery_latency_seconds_bucket", (("le", "0.025"), *ws))] == 0
    assert samples[("herald_delivery_latency_seconds_bucket", (("le", "0.05"), *ws))] == 4
    assert samples[("herald_delivery_latency_seconds_bucket", (("le", "+Inf"), *ws))] == 4
    assert samples[("herald_delivery_latency_seconds_count", ws)] == 4
    sse = (("transport", "sse"),)
    assert samples[("herald_delivery_latency_seconds_bucket", (("le", "2.5"), *sse))] == 0
    assert samples[("herald_delivery_latency_seconds_count", sse)] == 2
    assert samples[("herald_delivery_latency_seconds_count", (("transport", "poll"),))] == 0


def test_superseded_events_are_flushed_into_the_dropped_counter() -> None:
    metrics = Metrics()
    metrics.superseded.count = 3
    samples = family(metrics, "herald_events_dropped")
    assert samples[("herald_events_dropped_total", (("reason", "superseded"),))] == 3
    assert metrics.superseded.count == 0
