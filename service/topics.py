"""Which Kafka topics Herald exposes, and how a key maps to its partition."""

from __future__ import annotations

import re

from aiokafka.partitioner import murmur2

from .config import Settings

# Kafka's own rule for topic names (which also refuses "." and "..").
_LEGAL = re.compile(r"[A-Za-z0-9._-]{1,249}")


class TopicPolicy:
    """Decides whether a topic name is exposed: configured by list and/or pattern."""

    def __init__(self, settings: Settings) -> None:
        self._names = frozenset(settings.topic_list)
        self._pattern = re.compile(settings.topics) if settings.topics else None

    def exposed(self, topic: str) -> bool:
        # Kafka-internal topics (__consumer_offsets, __share_group_state, ...) never are.
        if topic.startswith("__") or topic in (".", "..") or not _LEGAL.fullmatch(topic):
            return False
        if topic in self._names:
            return True
        return self._pattern is not None and self._pattern.fullmatch(topic) is not None


def partition_for_key(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner puts ``key`` on (murmur2, as the Java client)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def unkeyed_partition(topic: str, partitions: int) -> int:
    """The one partition every unkeyed event of ``topic`` goes to, so that a topic's unkeyed
    stream keeps its publish order: chosen from the topic name, as a key chooses its own."""
    return partition_for_key(topic, partitions)
