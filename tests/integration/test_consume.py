"""The consumer: every partition of every exposed topic, however many there are, and an
event ends Kafka's wait for data."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ..clients import publish, sse
from ..processes import HeraldProcess, serving

TOPICS = 300
# Longer than the test waits for an event, and below the request timeout it is checked against.
LONG_FETCH_WAIT_MS = 100_000


async def test_an_instance_with_hundreds_of_topics_gets_ready_and_delivers(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Offsets asked of topics the consumer has no metadata for were learnt one topic per
    # round trip: with a few hundred topics the first assignment never finished.
    prefix = f"many-{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{n:03d}" for n in range(TOPICS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 3, 1) for name in names])
    finally:
        await admin.close()
    server = HeraldProcess(kafka_bootstrap, tmp_path / "herald.log", topics=f"{prefix}.*")
    async with serving(server):
        last = names[-1]
        async with sse(server.base_url, f"/v1/topics/{last}/stream") as stream:
            await publish(server.base_url, last, {"data": "reached"})
            assert (await stream.next_event()).json()["data"] == "reached"


async def test_an_event_is_delivered_while_kafka_holds_the_consumer_s_fetch(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    # Kafka may hold this instance's fetches far longer than the test waits: only an event
    # that ends the wait when it arrives can reach the subscriber in time, which is what
    # lets HERALD_CONSUMER_FETCH_MAX_WAIT_MS be long without costing latency.
    topic = f"held-{uuid.uuid4().hex[:12]}"
    server = HeraldProcess(
        kafka_bootstrap,
        tmp_path / "herald.log",
        topics="held-.*",
        consumer_fetch_max_wait_ms=str(LONG_FETCH_WAIT_MS),
        publish_timeout_s=str(2 * LONG_FETCH_WAIT_MS / 1000),
    )
    # The first event creates the topic; the others arrive while a fetch of it is held.
    async with serving(server), sse(server.base_url, f"/v1/topics/{topic}/stream") as stream:
        for n in range(3):
            await publish(server.base_url, topic, {"data": n})
            async with asyncio.timeout(LONG_FETCH_WAIT_MS / 1000 / 4):
                assert (await stream.next_event()).json()["data"] == n
