"""Herald in process on the real broker, with its live consumer's fetches held on demand: the
broker's end offsets move on while the instance reads nothing, as when it falls behind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from service.config import load_settings
from service.kafka import Consumer, Kafka
from service.kafka.clients import AioKafka

from .serving import InProcess, in_process


class HeldKafka:
    """Herald's real Kafka clients, except that the live consumer's fetches can be held: the
    broker's end offsets move on while the instance reads nothing, as when it falls behind."""

    def __init__(self, kafka: Kafka) -> None:
        self._kafka = kafka
        self.reading = asyncio.Event()
        self.reading.set()
        # Set once the consumer asked for records while held: from then on it reads nothing.
        self.held = asyncio.Event()

    def consumer(self, client_id: str, **options: Any) -> Consumer:
        consumer = self._kafka.consumer(client_id, **options)
        return _Held(consumer, self) if client_id == "herald-consumer" else consumer

    def producer(self, client_id: str) -> Any:
        return self._kafka.producer(client_id)

    def admin(self, client_id: str) -> Any:
        return self._kafka.admin(client_id)

    def explain(self, failure: BaseException) -> str:
        return self._kafka.explain(failure)


class _Held:
    def __init__(self, consumer: Consumer, kafka: HeldKafka) -> None:
        self._consumer = consumer
        self._reading = kafka.reading
        self._held = kafka.held

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: Any = None) -> Any:
        if not self._reading.is_set():
            self._held.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_ms / 1000):
                    await self._reading.wait()
            if not self._reading.is_set():
                return {}
        return await self._consumer.getmany(
            *partitions, timeout_ms=timeout_ms, max_records=max_records
        )


@contextlib.asynccontextmanager
async def behind_kafka(
    kafka_bootstrap: str, **settings: str
) -> AsyncIterator[tuple[HeldKafka, InProcess]]:
    """A Herald that tells its clients past 1 s of lag and is not ready past 2 s."""
    kafka = HeldKafka(AioKafka(load_settings({"HERALD_KAFKA_BOOTSTRAP": kafka_bootstrap})))
    async with in_process(
        kafka,  # type: ignore[arg-type]
        kafka_bootstrap=kafka_bootstrap,
        **{"lag_notice_s": "1", "lag_unready_s": "2", **settings},
    ) as server:
        yield kafka, server
