"""service/worker_metrics.py: every worker's figures in one scrape, each with its worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics
from service.worker_metrics import WorkerMetrics


def values(text: bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for found in text_string_to_metric_families(text.decode())
        for sample in found.samples
        if sample.name == name
    }


async def test_any_worker_shows_every_workers_figures(tmp_path: Path) -> None:
    first, second = Metrics(), Metrics()
    first.published.inc(3)
    second.published.inc(4)
    second.connections.labels("ws").inc(2)
    workers = [
        WorkerMetrics(tmp_path, 0, first.exposition),
        WorkerMetrics(tmp_path, 1, second.exposition),
    ]
    for worker in workers:
        await worker.start()
    try:
        for worker in workers:
            text = await worker.exposition()
            assert values(text, "herald_events_published_total") == {
                (("worker", "0"),): 3.0,
                (("worker", "1"),): 4.0,
            }
            assert values(text, "herald_connections")[(("transport", "ws"), ("worker", "1"))] == 2
            # One HELP and TYPE per family, however many workers.
            assert text.decode().count("# TYPE herald_connections gauge") == 1
    finally:
        for worker in workers:
            await worker.stop()
    # Each worker's socket went with it.
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


async def test_a_worker_that_does_not_answer_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "7.metrics.sock").touch()  # a worker that ended without cleaning up
    alone = Metrics()
    alone.published.inc(1)
    worker = WorkerMetrics(tmp_path, 0, alone.exposition)
    await worker.start()
    try:
        text = await worker.exposition()
    finally:
        await worker.stop()
    assert values(text, "herald_events_published_total") == {(("worker", "0"),): 1.0}
