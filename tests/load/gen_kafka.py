"""Events straight into Kafka, as Herald's producer writes them. ``python -m tests.load.gen_kafka``.

For scenarios whose subject is what comes after the publish (many topics, consuming alone):
2 000 single POSTs a second would make Herald's CPU mostly the publish path, which the
``publish`` scenario measures. Records are Herald's own (service.records.to_record): an
unkeyed event goes to the partition Herald would choose for its topic.

Commands (after ``ready``):

- ``create {topic, topics, partitions}``: create topics ``<topic>-00000`` ... (``topics`` of
  them), in batches. Answers ``created``.
- ``steady {topic, topics?, partitions?, rate, duration, pad}``: open-loop sends at
  ``rate`` events a second, round-robin over the ``topics`` topics named as by ``create`` (or
  ``topic`` itself), each event's data carrying ``ts`` as gen_http's do. Answers
  ``published`` as gen_http does. ``partitions`` (as created) saves asking Kafka for each
  topic's partition count at its first send.
- ``flood {topic, topics, partitions, keys?, duration, pad}``: as many events as Kafka takes
  for ``duration`` seconds, each partition filled by a task of its own in whole batches
  (aiokafka's batch API: no future per record, which caps ``send`` near 20 000 a second
  here). With ``keys``, each topic's events carry ``keys`` keys (``user-NNNNN``), each on
  the partition Kafka's default partitioner gives it, so every partition has its share;
  without, unkeyed on the topic's one partition. Answers ``flooded`` with the count and rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from service.config import load_settings
from service.events import EventIn
from service.kafka import Producer
from service.kafka.clients import AioKafka
from service.records import to_record
from service.topics import partition_for_key, unkeyed_partition

from .control import MAX_LIFETIME_S, emit, process_cpu_s, run_generator, serve_commands
from .gen_http import event_body
from .gen_ws import key_name

CREATE_BATCH = 500
# Sends awaiting Kafka's answer at once, at most: the producer's buffer stays bounded.
IN_FLIGHT = 20_000
# A flood's batches (16 KiB each, aiokafka's default) awaiting Kafka's answer at once, at most.
FLOOD_BATCHES = 64


def topic_names(command: dict[str, Any]) -> list[str]:
    """``topics`` topics named after ``topic`` (or ``topic`` alone without a count)."""
    count = command.get("topics")
    if not count:
        return [command["topic"]]
    return [f"{command['topic']}-{index:05d}" for index in range(int(count))]


class Sender:
    """Herald's producer with this generator's linger time; each topic on its partition."""

    def __init__(self, bootstrap: str, linger_ms: int) -> None:
        settings = load_settings(
            {"HERALD_KAFKA_BOOTSTRAP": bootstrap, "HERALD_PRODUCER_LINGER_MS": str(linger_ms)}
        )
        self.producer: Producer = AioKafka(settings).producer(f"bench-gen-kafka-{linger_ms}")
        self.partitions: dict[str, int] = {}
        self.in_flight = asyncio.Semaphore(IN_FLIGHT)
        self.acked = 0
        self.errors: list[str] = []
        self._sends: set[asyncio.Future[None]] = set()

    def know(self, topics: list[str], partitions: int | None) -> None:
        """Each of ``topics`` has ``partitions`` (None: ask Kafka at the first send)."""
        if partitions:
            for topic in topics:
                self.partitions[topic] = unkeyed_partition(topic, partitions)

    async def partition(self, topic: str) -> int:
        partition = self.partitions.get(topic)
        if partition is None:
            count = len(await self.producer.partitions_for(topic))
            partition = self.partitions[topic] = unkeyed_partition(topic, count)
        return partition

    async def send(self, topic: str, seq: int, pad: str) -> None:
        """Hand one event to the producer; it is sent and counted in the background (a
        topic's first send waits for Kafka's metadata: those of many topics wait together)."""
        await self.in_flight.acquire()
        task = asyncio.ensure_future(self._send(topic, seq, pad))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, topic: str, seq: int, pad: str) -> None:
        key, value, headers = to_record(EventIn(**event_body(seq, pad, None)))
        try:
            answer = await self.producer.send(
                topic, value, key=key, partition=await self.partition(topic), headers=headers
            )
            await answer
            self.acked += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported, not fatal
            self.failed(exc)
        finally:
            self.in_flight.release()

    def failed(self, exc: Exception) -> None:
        """Keep the first few errors for the answer."""
        if len(self.errors) < 5:
            self.errors.append(repr(exc))

    async def settle(self) -> None:
        """Wait until every send has its answer."""
        for _ in range(IN_FLIGHT):
            await self.in_flight.acquire()
        for _ in range(IN_FLIGHT):
            self.in_flight.release()


async def create(
    bootstrap: str, command: dict[str, Any], senders: tuple[Sender, ...]
) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-gen-kafka")
    await admin.start()
    names = topic_names(command)
    partitions = int(command.get("partitions", 1))
    try:
        for start in range(0, len(names), CREATE_BATCH):
            batch = [NewTopic(name, partitions, 1) for name in names[start : start + CREATE_BATCH]]
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(batch)
    finally:
        await admin.close()
    # A producer's first send to a topic waits for its metadata: all of them at once now,
    # rather than one refresh after another during a measured window.
    for sender in senders:
        await asyncio.gather(*(known(sender.producer, name) for name in names))
        sender.know(names, partitions)
    return {"event": "created", "topics": len(names), "partitions": partitions}


async def known(producer: Producer, topic: str, within_s: float = 120.0) -> None:
    """Wait until ``producer`` has ``topic``'s metadata (a new topic takes a moment)."""
    async with asyncio.timeout(within_s):
        while True:
            try:
                await producer.partitions_for(topic)
                return
            except UnknownTopicOrPartitionError:
                await asyncio.sleep(0.5)


async def steady(sender: Sender, command: dict[str, Any]) -> dict[str, Any]:
    names = topic_names(command)
    sender.know(names, command.get("partitions"))
    rate, duration = float(command["rate"]), float(command["duration"])
    pad = "x" * int(command.get("pad", 0))
    events = max(1, round(rate * duration))
    acked_before = sender.acked
    loop = asyncio.get_running_loop()
    started = loop.time()
    lateness = 0.0
    for seq in range(events):
        due = started + seq / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lateness = max(lateness, loop.time() - due)
        await sender.send(names[seq % len(names)], seq, pad)
    await sender.settle()
    wall = loop.time() - started
    accepted = sender.acked - acked_before
    return {
        "event": "published",
        "accepted": accepted,
        "events": events,
        "statuses": {"201": accepted} if accepted == events else {"201": accepted, "0": events},
        "wall_s": wall,
        "rate": accepted / wall if wall else 0.0,
        "max_lateness_s": lateness,
        "errors": sender.errors,
        "cpu_s": process_cpu_s(),
    }


def flood_targets(command: dict[str, Any]) -> list[tuple[str, int, list[str | None]]]:
    """(topic, partition, the keys of its events) for every partition a flood fills."""
    partitions = int(command.get("partitions", 1))
    keys = [key_name(index) for index in range(int(command.get("keys", 0)))]
    targets: list[tuple[str, int, list[str | None]]] = []
    for topic in topic_names(command):
        if not keys:
            targets.append((topic, unkeyed_partition(topic, partitions), [None]))
            continue
        for partition in range(partitions):
            on_it: list[str | None] = [
                key for key in keys if partition_for_key(key, partitions) == partition
            ]
            if on_it:
                targets.append((topic, partition, on_it))
    return targets


async def flood(sender: Sender, command: dict[str, Any]) -> dict[str, Any]:
    pad = "x" * int(command.get("pad", 0))
    # aiokafka's own producer, for its batch API (Herald's Producer protocol has send only).
    producer: Any = sender.producer
    acks: list[asyncio.Future[int]] = []
    # Batches handed over and not acknowledged yet: all partitions' at once time out in Kafka.
    in_flight = asyncio.Semaphore(FLOOD_BATCHES)
    sent = 0
    began = time.monotonic()
    cpu_before = process_cpu_s()
    deadline = began + float(command["duration"])

    async def fill(topic: str, partition: int, keys: list[str | None]) -> None:
        # send_batch waits while the partition's previous batch is queued: one task each.
        nonlocal sent
        seq = 0
        while time.monotonic() < deadline:
            await in_flight.acquire()
            batch = producer.create_batch()
            count = 0
            while True:
                key, value, headers = to_record(
                    EventIn(**event_body(seq, pad, keys[seq % len(keys)]))
                )
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    break  # full: this record is made again (a fresh ts) for the next batch
                seq += 1
                count += 1
            try:
                ack = await producer.send_batch(batch, topic, partition=partition)
            except Exception as exc:  # noqa: BLE001 - counted and reported, not fatal
                sender.failed(exc)
                in_flight.release()
                continue
            acks.append(asyncio.ensure_future(counted(ack, count)))
            sent += count

    async def counted(ack: asyncio.Future[Any], count: int) -> int:
        try:
            await ack
        except Exception as exc:  # noqa: BLE001 - counted and reported, not fatal
            sender.failed(exc)
            return 0
        finally:
            in_flight.release()
        return count

    await asyncio.gather(*(fill(*target) for target in flood_targets(command)))
    acked = sum(await asyncio.gather(*acks))
    wall = time.monotonic() - began
    return {
        "event": "flooded",
        "sent": sent,
        "acked": acked,
        "wall_s": wall,
        "rate": acked / wall if wall else 0.0,
        "cpu_s": process_cpu_s() - cpu_before,
        "errors": sender.errors,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.load.gen_kafka")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--lifetime", type=float, default=MAX_LIFETIME_S)
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    # Unbatched for steady rates (latency as Herald's own publishes have it), batched to flood.
    single, batched = Sender(args.bootstrap, 0), Sender(args.bootstrap, 5)
    await single.producer.start()
    await batched.producer.start()
    emit({"event": "ready"})

    async def run_create(command: dict[str, Any]) -> dict[str, Any]:
        return await create(args.bootstrap, command, (single, batched))

    async def run_steady(command: dict[str, Any]) -> dict[str, Any]:
        return await steady(single, command)

    async def run_flood(command: dict[str, Any]) -> dict[str, Any]:
        return await flood(batched, command)

    try:
        await serve_commands(
            {"create": run_create, "steady": run_steady, "flood": run_flood}, args.lifetime
        )
    finally:
        await single.producer.stop()
        await batched.producer.stop()


if __name__ == "__main__":
    run_generator(main)
