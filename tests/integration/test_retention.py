"""Retention on a real broker: a cursor whose records Kafka deleted resumes with a reset."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from ..processes import HeraldProcess
from ..routes.test_resume import check_reset_beyond_retention
from ..serving import StartServer


@pytest.fixture(scope="module")
async def small_ring(module_server_factory: StartServer) -> AsyncIterator[HeraldProcess]:
    """A server whose ring keeps only a few events, so resumes must read Kafka."""
    served = await module_server_factory(topics="it-.*", ring_size="5")
    assert isinstance(served, HeraldProcess)
    yield served


async def test_resume_beyond_retention_sends_an_explicit_reset(
    small_ring: HeraldProcess, topic: str, kafka_bootstrap: str
) -> None:
    async def delete_before(partition: int, offset: int) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            records = {TopicPartition(topic, partition): RecordsToDelete(offset)}
            await admin.delete_records(records)
        finally:
            await admin.close()

    await check_reset_beyond_retention(small_ring, topic, delete_before)
