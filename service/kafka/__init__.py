"""Kafka as Herald uses it: the few operations of a consumer, a producer and an admin client.

Everything else in Herald reaches Kafka through a ``Kafka`` (a factory of these clients):
``clients.AioKafka`` in production, ``memory.MemoryKafka`` for tests that need no broker.
The consumer and producer are aiokafka's own shapes (Herald names what it uses of them); the
admin client is Herald's own, smaller than aiokafka's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Collection, Sequence
from typing import Protocol

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

__all__ = [
    "FAILURES",
    "Admin",
    "Consumer",
    "Kafka",
    "Producer",
    "Record",
    "TopicPartition",
    "leaked_cancel",
    "quietly",
]

# What a Kafka client raises when the cluster cannot be reached or refuses: the caller turns
# it into a 503, a retry, or "not ready".
FAILURES = (KafkaError, TimeoutError, OSError)

log = logging.getLogger(__name__)


def leaked_cancel() -> bool:
    """In an ``except CancelledError``: whether it came out of a client's own cancelled task,
    nobody having cancelled the task that catches it."""
    task = asyncio.current_task()
    return task is not None and not task.cancelling()


async def quietly(closing: Awaitable[object]) -> None:
    """Await a Kafka client's ``stop()`` or ``close()`` in a cleanup: what it raises goes to
    the debug log, except a cancel of the caller itself.

    aiokafka's consumer cancels its own fetch tasks in ``stop()`` and then awaits them, so
    their CancelledError can come out of ``stop()`` though nobody cancelled the caller
    (aiokafka issue 647). Taken for the caller's own, it ended the live consumer's loop for
    good when the broker went away at the wrong moment: the instance never became ready again.
    """
    try:
        await closing
    except asyncio.CancelledError:
        if not leaked_cancel():
            raise
        log.debug("closing a Kafka client raised a cancel of its own tasks", exc_info=True)
    except Exception:
        log.debug("closing a Kafka client failed", exc_info=True)


class Record(Protocol):
    """One consumed record, as Herald reads it (aiokafka's ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Stored(Protocol):
    """Where a producer's record was stored (aiokafka's RecordMetadata)."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class Found(Protocol):
    """The first offset at or after a time (aiokafka's OffsetAndTimestamp)."""

    @property
    def offset(self) -> int: ...


class Consumer(Protocol):
    """A consumer without a group: partitions assigned and positions sought by Herald."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def assign(self, partitions: Collection[TopicPartition]) -> None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    async def position(self, partition: TopicPartition) -> int: ...
    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]: ...
    async def beginning_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]: ...
    async def end_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]: ...
    async def offsets_for_times(
        self, timestamps: dict[TopicPartition, int]
    ) -> dict[TopicPartition, Found | None]: ...


class Producer(Protocol):
    """An idempotent producer with acks=all: a send's future resolves once Kafka has it."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def partitions_for(self, topic: str) -> Collection[int]: ...
    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Stored]: ...


class Admin(Protocol):
    """Which topics exist, and creating one."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def partition_counts(
        self, topics: Sequence[str] | None = None, *, with_leaders: bool = False
    ) -> dict[str, int]:
        """Existing topics (of ``topics``, or all) and their partition counts; with
        ``with_leaders``, only topics whose every partition has a leader."""
        ...

    async def create_topic(self, topic: str, partitions: int, replication: int) -> None:
        """Create ``topic``; one that exists already is no error."""
        ...


class Kafka(Protocol):
    """Makes the Kafka clients of one Herald process, all configured alike."""

    def consumer(
        self,
        client_id: str,
        *,
        fetch_max_wait_ms: int | None = None,
        max_partition_fetch_bytes: int | None = None,
        metadata_max_age_ms: int | None = None,
    ) -> Consumer: ...
    def producer(self, client_id: str) -> Producer: ...
    def admin(self, client_id: str) -> Admin: ...
    def explain(self, failure: BaseException) -> str:
        """Why a client could not reach Kafka (``failure`` is what it raised): one line."""
        ...
