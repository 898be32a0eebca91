"""Fault tests start their own Kafka cluster and Herald, and stop them even when a test fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ..processes import HeraldProcess, KafkaCluster, serving


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    """Three KRaft nodes on free loopback ports, only for this test."""
    cluster = KafkaCluster(tmp_path / "kafka")
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.discard()


@pytest.fixture
async def herald(cluster: KafkaCluster, tmp_path: Path) -> AsyncIterator[HeraldProcess]:
    """One Herald on the cluster; its topics are replicated to all three nodes."""
    server = HeraldProcess(
        cluster.bootstrap,
        tmp_path / "herald.log",
        topics="it-.*",
        topic_replication="3",
        topic_partitions="3",
        publish_timeout_s="5",
    )
    async with serving(server):
        yield server
