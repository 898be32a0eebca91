"""Idempotency against a real broker: a second copy another producer wrote is delivered once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from service.idempotency import HEADER, tags_for

from ..clients import publish, sse
from ..processes import HeraldProcess
from ..serving import StartServer


@pytest.fixture(scope="module")
async def small_ring(module_server_factory: StartServer) -> AsyncIterator[HeraldProcess]:
    served = await module_server_factory(topics="it-.*", ring_size="2")
    assert isinstance(served, HeraldProcess)
    yield served


async def test_a_duplicate_copy_in_kafka_is_delivered_once(
    small_ring: HeraldProcess, kafka_bootstrap: str, topic: str
) -> None:
    """Two records with one idempotency tag (a retry that raced the first write)."""
    [tag] = tags_for(str(uuid.uuid4()), [("message", "k", "copy")])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with sse(small_ring.base_url, f"/v1/topics/{topic}/stream?key=k") as stream:
            [created] = await publish(small_ring.base_url, topic, {"data": "before", "key": "k"})
            await stream.next_event()
            for _ in range(2):
                await producer.send_and_wait(
                    topic, b'"copy"', key=b"k", headers=[(HEADER, tag.header())]
                )
            await publish(small_ring.base_url, topic, {"data": "after", "key": "k"})
            live = [(await stream.next_event()).json()["data"] for _ in range(2)]
    finally:
        await producer.stop()
    assert live == ["copy", "after"]
    # A resume from before both copies reads Kafka (the ring holds 2): still one copy.
    path = f"/v1/topics/{topic}/stream?key=k&since={created['id']}"
    async with sse(small_ring.base_url, path) as stream:
        replayed = [(await stream.next_event()).json()["data"] for _ in range(2)]
    assert replayed == ["copy", "after"]
