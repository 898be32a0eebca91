"""The consumer: every partition of every exposed topic, however many topics there are."""

from __future__ import annotations

import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ..clients import publish, sse
from ..processes import HeraldProcess, serving

TOPICS = 300


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
