"""aiokafka clients as Herald configures them: bootstrap, security, timeouts and ids."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context

from ..config import Settings
from . import Admin, Consumer, Producer, diagnosis

# Producer records may hold a whole request body plus headers.
_RECORD_OVERHEAD = 64 * 1024


class AioKafka:
    """The production ``Kafka``: aiokafka clients for ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._common = _common_options(settings)
        self._trouble = diagnosis.watch()

    def consumer(
        self,
        client_id: str,
        *,
        fetch_max_wait_ms: int | None = None,
        max_partition_fetch_bytes: int | None = None,
        metadata_max_age_ms: int | None = None,
    ) -> Consumer:
        settings = self._settings
        options: dict[str, Any] = {
            **self._common,
            "client_id": client_id,
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms
            if fetch_max_wait_ms is None
            else fetch_max_wait_ms,
        }
        if max_partition_fetch_bytes is not None:
            options["max_partition_fetch_bytes"] = max_partition_fetch_bytes
        if metadata_max_age_ms is not None:
            options["metadata_max_age_ms"] = metadata_max_age_ms
        consumer: Consumer = AIOKafkaConsumer(**options)
        return consumer

    def producer(self, client_id: str) -> Producer:
        producer: Producer = AIOKafkaProducer(
            **self._common,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=self._settings.producer_linger_ms,
            max_request_size=self._settings.max_body_bytes + _RECORD_OVERHEAD,
            metadata_max_age_ms=30_000,
        )
        return producer

    def admin(self, client_id: str) -> Admin:
        return _Admin(AIOKafkaAdminClient(**self._common, client_id=client_id))

    def explain(self, failure: BaseException) -> str:
        # The cause aiokafka logged during this attempt (an attempt lasts at most a request
        # timeout); else what was raised. A timeout says nothing by itself but its length.
        timeout_ms = self._settings.kafka_request_timeout_ms
        cause = self._trouble.recent(timeout_ms / 1000 + 1) or str(failure)
        if not cause:
            timed_out = isinstance(failure, TimeoutError)
            cause = f"no answer within {timeout_ms} ms" if timed_out else type(failure).__name__
        return diagnosis.explain(self._settings, cause)


def _common_options(settings: Settings) -> dict[str, Any]:
    """Bootstrap, security and the request timeout: the same for every client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        # Requests (and so batches that Kafka did not take) end within a publish's deadline
        # instead of being retried forever while the broker is away.
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password_value()
    return options


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Server certificates checked against the CA file (else the system's), hostname too;
    a client certificate when one is configured (mutual TLS)."""
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_ca_file or None,
        certfile=settings.kafka_ssl_cert_file or None,
        keyfile=settings.kafka_ssl_key_file or None,
    )
    return context


class _Admin:
    """Herald's Admin over aiokafka's admin client."""

    def __init__(self, client: AIOKafkaAdminClient) -> None:
        self._client = client

    async def start(self) -> None:
        await self._client.start()

    async def close(self) -> None:
        await self._client.close()

    async def partition_counts(
        self, topics: Sequence[str] | None = None, *, with_leaders: bool = False
    ) -> dict[str, int]:
        described = await self._client.describe_topics(list(topics) if topics else None)
        counts: dict[str, int] = {}
        for topic in described:
            if topic["error_code"] != 0:
                continue
            partitions = topic["partitions"]
            if with_leaders and not (
                partitions and all(p["error_code"] == 0 and p["leader"] >= 0 for p in partitions)
            ):
                continue
            counts[topic["topic"]] = len(partitions)
        return counts

    async def create_topic(self, topic: str, partitions: int, replication: int) -> None:
        response = await self._client.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=replication)]
        )
        for _name, code, *_rest in response.topic_errors:
            if code == 0:
                continue
            error: type[KafkaError] = for_code(code)
            if error is not TopicAlreadyExistsError:
                raise error(f"cannot create topic {topic!r}")
