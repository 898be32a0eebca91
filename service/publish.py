"""Publishing: events to Kafka with acks=all on an idempotent producer, answered only once acked."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from .config import Settings
from .cursor import Cursor
from .errors import KafkaUnavailable, UnknownTopic
from .events import EventIn
from .idempotency import Tag
from .kafka_clients import new_admin
from .topics import TopicPolicy, partition_for_key

log = logging.getLogger(__name__)

# Kafka protocol error codes met when creating a topic.
_TOPIC_ALREADY_EXISTS = 36
_RETRY_AFTER_S = 2
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
    """Owns the producer and the admin client; creates exposed topics on first publish."""

    def __init__(self, settings: Settings, policy: TopicPolicy) -> None:
        self._settings = settings
        self._policy = policy
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._known_topics: set[str] = set()
        self._connecting: asyncio.Lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect if Kafka is there; if not, the first publish tries again (and answers 503)."""
        try:
            await self._connect()
        except KafkaUnavailable as exc:
            log.warning("publisher: %s; will retry on publish", exc.detail)

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

    async def _connect(self) -> AIOKafkaProducer:
        async with self._connecting:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.kafka_bootstrap,
                client_id="herald-publisher",
                acks="all",
                enable_idempotence=True,
                linger_ms=self._settings.producer_linger_ms,
                max_request_size=self._settings.max_body_bytes + 64 * 1024,
                # Batches that Kafka did not take within the deadline expire instead of
                # being retried forever while the broker is away.
                request_timeout_ms=self._settings.kafka_request_timeout_ms,
                metadata_max_age_ms=30_000,
            )
            admin = new_admin(self._settings, "herald-admin")
            try:
                await asyncio.wait_for(producer.start(), self._settings.publish_timeout_s)
                await asyncio.wait_for(admin.start(), self._settings.publish_timeout_s)
            except (KafkaError, TimeoutError, OSError) as exc:
                await _quietly(producer.stop())
                await _quietly(admin.close())
                raise KafkaUnavailable(
                    f"cannot reach Kafka at {self._settings.kafka_bootstrap}: {exc!r}",
                    retry_after=_RETRY_AFTER_S,
                ) from None
            self._producer, self._admin = producer, admin
            log.info("publisher connected to %s", self._settings.kafka_bootstrap)
            return producer

    async def publish(
        self, topic: str, events: list[EventIn], tags: list[Tag] | None = None
    ) -> list[Published]:
        """Write ``events`` to ``topic``; return only after Kafka acknowledged every one.

        With idempotency ``tags``, an unkeyed event's partition follows from its tag, so a
        retried write lands next to the first (see idempotency).
        """
        if not self._policy.exposed(topic):
            raise UnknownTopic(f"topic {topic!r} is not exposed")
        producer = self._producer or await self._connect()
        await self._ensure_topic(topic)
        try:
            async with asyncio.timeout(self._settings.publish_timeout_s):
                partitions = len(await producer.partitions_for(topic)) if tags else 0
                pending = []
                for index, event in enumerate(events):
                    tag = tags[index] if tags else None
                    key, value, headers = event.to_record(tag)
                    partition = None
                    if tag is not None and key is None:
                        partition = partition_for_key(f"{tag.key}/{tag.index}", partitions)
                    sent = await producer.send(
                        topic, value, key=key, headers=headers, partition=partition
                    )
                    pending.append(sent)
                # One event (the common POST) needs no gather and its wrapper future.
                acked = [await pending[0]] if len(pending) == 1 else await asyncio.gather(*pending)
        except (KafkaError, TimeoutError) as exc:
            self._known_topics.discard(topic)
            raise KafkaUnavailable(
                f"Kafka did not acknowledge within {self._settings.publish_timeout_s}s: {exc!r}",
                retry_after=_RETRY_AFTER_S,
            ) from None
        return [
            Published(topic, event.key, meta.partition, meta.offset)
            for event, meta in zip(events, acked, strict=True)
        ]

    async def _ensure_topic(self, topic: str) -> None:
        if topic in self._known_topics:
            return
        admin = self._admin
        assert admin is not None
        try:
            async with asyncio.timeout(self._settings.publish_timeout_s):
                if not await _described(admin, topic):
                    if not self._settings.auto_create_topics:
                        raise UnknownTopic(f"topic {topic!r} does not exist")
                    await self._create(admin, topic)
                    # Created is not yet visible: a broker learns of the topic a moment
                    # later, and a producer asking before then spins on "not found".
                    await _until_visible(admin, topic)
        except (KafkaError, TimeoutError) as exc:
            raise KafkaUnavailable(
                f"cannot look up topic {topic!r}: {exc!r}", retry_after=_RETRY_AFTER_S
            ) from None
        self._known_topics.add(topic)

    async def _create(self, admin: AIOKafkaAdminClient, topic: str) -> None:
        response = await admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=self._settings.topic_partitions,
                    replication_factor=self._settings.topic_replication,
                )
            ]
        )
        for _name, code, *_rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise KafkaUnavailable(
                    f"cannot create topic {topic!r}: Kafka error {code}", retry_after=_RETRY_AFTER_S
                )
        log.info("created topic %s (%d partitions)", topic, self._settings.topic_partitions)


async def _described(admin: AIOKafkaAdminClient, topic: str, with_leaders: bool = False) -> bool:
    """Whether the broker answering knows ``topic`` (and, if asked, a leader per partition)."""
    described = await admin.describe_topics([topic])
    if not described or described[0]["error_code"] != 0:
        return False
    partitions = described[0]["partitions"]
    return not with_leaders or (
        bool(partitions) and all(p["error_code"] == 0 and p["leader"] >= 0 for p in partitions)
    )


async def _until_visible(admin: AIOKafkaAdminClient, topic: str) -> None:
    # Kafka offers no notification of this: ask until the answer is yes.
    while True:
        if await _described(admin, topic, with_leaders=True):
            return
        await asyncio.sleep(_VISIBLE_POLL_S)


async def _quietly(closing: object) -> None:
    try:
        await closing  # type: ignore[misc]
    except Exception:  # cleanup after a failed start must not mask its cause
        log.debug("cleanup after failed Kafka start", exc_info=True)
