"""Publishing: events to Kafka with acks=all on an idempotent producer, answered only once acked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .config import Settings
from .cursor import Cursor
from .errors import KafkaUnavailable, UnknownTopic
from .events import EventIn
from .idempotency import Tag
from .kafka import FAILURES, Admin, Kafka, Producer, quietly
from .metrics import Metrics
from .records import to_record
from .topics import TopicPolicy, unkeyed_partition

log = logging.getLogger(__name__)

_VISIBLE_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Published:
    """Where Kafka stored one event."""

    topic: str
    key: str | None
    partition: int
    offset: int

    def as_dict(self) -> dict[str, object]:
        return {
            "id": Cursor.after(self.partition, self.offset).encode(self.topic),
            "topic": self.topic,
            "key": self.key,
            "partition": self.partition,
            # Offsets travel as strings: JavaScript numbers lose precision above 2**53.
            "offset": str(self.offset),
        }


class Publisher:
    """Owns the producer and an admin client; creates exposed topics on first publish."""

    def __init__(
        self, settings: Settings, policy: TopicPolicy, kafka: Kafka, metrics: Metrics | None = None
    ) -> None:
        self._settings = settings
        self._policy = policy
        self._kafka = kafka
        self._errors = (metrics or Metrics()).kafka_errors
        self._producer: Producer | None = None
        self._admin: Admin | None = None
        self._known_topics: set[str] = set()
        self._connecting: asyncio.Lock = asyncio.Lock()
        # Why the last attempt to connect failed (said once per cause).
        self._problem: str | None = None

    async def start(self) -> None:
        """Connect if Kafka is there; if not, the first publish tries again (and answers 503)."""
        try:
            await self._connect(quiet=True)
        except KafkaUnavailable:
            # The consumer says why, and keeps saying it in /readyz: one line is enough.
            log.info("publisher: not connected to Kafka yet; the first publish tries again")

    async def stop(self) -> None:
        producer, admin = self._producer, self._admin
        self._producer = self._admin = None
        if producer is not None:
            await producer.stop()  # flushes what is still batched
        if admin is not None:
            await admin.close()

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def _connect(self, quiet: bool = False) -> Producer:
        async with self._connecting:
            if self._producer is not None:
                return self._producer
            producer = self._kafka.producer("herald-publisher")
            admin = self._kafka.admin("herald-admin")
            try:
                async with asyncio.timeout(self._settings.publish_timeout_s):
                    await producer.start()
                    await admin.start()
            except FAILURES as exc:
                self._errors.labels("producer").inc()
                await quietly(producer.stop())
                await quietly(admin.close())
                # The cause goes to the log (once per cause); a client is told nothing of
                # the cluster.
                problem = self._kafka.explain(exc)
                if problem != self._problem and not quiet:
                    log.warning("publisher: %s", problem)
                self._problem = problem
                raise KafkaUnavailable("Kafka cannot be reached") from None
            self._producer, self._admin = producer, admin
            self._problem = None
            log.info("publisher connected to Kafka")
            return producer

    async def publish(
        self,
        topic: str,
        events: list[EventIn],
        tags: list[Tag] | None = None,
        may_create: Callable[[], None] | None = None,
        trace_headers: list[tuple[str, bytes]] | None = None,
    ) -> list[Published]:
        """Write ``events`` to ``topic``; return only after Kafka acknowledged every one.

        A topic Kafka does not have is created (with HERALD_AUTO_CREATE_TOPICS) once
        ``may_create`` allows it (it raises when not). Unkeyed events all go to one partition
        of the topic (``unkeyed_partition``): they keep their publish order, and a retried
        idempotent write lands next to the first (see idempotency).
        """
        if not self._policy.exposed(topic):
            raise UnknownTopic(f"topic {topic!r} is not exposed")
        producer = self._producer or await self._connect()
        await self._ensure_topic(topic, may_create)
        try:
            async with asyncio.timeout(self._settings.publish_timeout_s):
                unkeyed: int | None = None
                if any(event.key is None for event in events):
                    unkeyed = unkeyed_partition(topic, len(await producer.partitions_for(topic)))
                pending = []
                for index, event in enumerate(events):
                    key, value, headers = to_record(event, tags[index] if tags else None)
                    if trace_headers:
                        headers.extend(trace_headers)
                    partition = unkeyed if key is None else None
                    sent = await producer.send(
                        topic, value, key=key, headers=headers, partition=partition
                    )
                    pending.append(sent)
                # One event (the common POST) needs no gather and its wrapper future.
                acked = [await pending[0]] if len(pending) == 1 else await asyncio.gather(*pending)
        except FAILURES as exc:
            self._errors.labels("producer").inc()
            self._known_topics.discard(topic)
            log.warning("publish to %s: Kafka did not acknowledge: %r", topic, exc)
            raise KafkaUnavailable(
                f"Kafka did not acknowledge within {self._settings.publish_timeout_s}s"
            ) from None
        return [
            Published(topic, event.key, meta.partition, meta.offset)
            for event, meta in zip(events, acked, strict=True)
        ]

    async def _ensure_topic(self, topic: str, may_create: Callable[[], None] | None) -> None:
        if topic in self._known_topics:
            return
        admin = self._admin
        assert admin is not None
        settings = self._settings
        try:
            async with asyncio.timeout(settings.publish_timeout_s):
                if topic not in await admin.partition_counts([topic]):
                    if not settings.auto_create_topics or may_create is None:
                        raise UnknownTopic(f"topic {topic!r} does not exist")
                    may_create()
                    await admin.create_topic(
                        topic, settings.topic_partitions, settings.topic_replication
                    )
                    log.info("created topic %s (%d partitions)", topic, settings.topic_partitions)
                    # Created is not yet visible: a broker learns of the topic a moment
                    # later, and a producer asking before then spins on "not found".
                    await _until_visible(admin, topic)
        except FAILURES as exc:
            self._errors.labels("admin").inc()
            log.warning("cannot look up or create topic %s: %r", topic, exc)
            raise KafkaUnavailable(f"cannot look up topic {topic!r}") from None
        self._known_topics.add(topic)


async def _until_visible(admin: Admin, topic: str) -> None:
    # Kafka offers no notification of this: ask until the answer is yes.
    while True:
        if topic in await admin.partition_counts([topic], with_leaders=True):
            return
        await asyncio.sleep(_VISIBLE_POLL_S)
