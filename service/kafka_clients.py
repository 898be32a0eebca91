"""Kafka clients as Herald configures them: one place for bootstrap, timeouts and ids."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from .config import Settings


def new_consumer(settings: Settings, client_id: str, **extra: Any) -> AIOKafkaConsumer:
    """A consumer without a group (positions are Herald's own) that reads from the start."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": client_id,
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": settings.consumer_fetch_max_wait_ms,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
    }
    return AIOKafkaConsumer(**{**options, **extra})


def new_admin(settings: Settings, client_id: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
