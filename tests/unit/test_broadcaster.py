"""service/broadcaster.py: positions, the ring, resume and fan-out of one topic."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest

from service import fan_out as fan_out_module
from service.broadcaster import Broadcaster, Broadcasters
from service.config import Settings
from service.cursor import Cursor
from service.events import Event, EventIn, EventRun, Scope
from service.fan_out import SLICE
from service.outbox import Outbox
from service.records import to_record
from service.topics import partition_for_key
from service.wire import Format

TOPIC = "orders"
PARTITIONS = 3
TIMESTAMP_MS = 1714564800123


def keys_on(partition: int, count: int = 2) -> list[str]:
    """Keys the default partitioner puts on ``partition`` of a PARTITIONS-partition topic."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        key = f"user-{i}"
        if partition_for_key(key, PARTITIONS) == partition:
            found.append(key)
        i += 1
    return found


(KEY_P0, OTHER_KEY_P0), (KEY_P1,), (KEY_P2,) = keys_on(0), keys_on(1, 1), keys_on(2, 1)


def new_broadcaster(ring_size: int = 100, start_offset: int = 0) -> Broadcaster:
    broadcaster = Broadcaster(TOPIC, ring_size)
    for partition in range(PARTITIONS):
        broadcaster.assign(partition, start_offset)
    return broadcaster


def put(
    broadcaster: Broadcaster,
    data: Any,
    *,
    key: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> Event:
    """Publish one record as the consumer would: a keyed record on its key's partition."""
    if partition is None:
        partition = partition_for_key(key, PARTITIONS) if key is not None else 0
    if offset is None:
        offset = broadcaster.positions.get(partition, 0)
    event = broadcaster.take_record(record(data, key, partition, offset))
    if event is not None:
        broadcaster.fan_out([event])
    return event


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def record(data: Any, key: str | None, partition: int, offset: int) -> Record:
    """A consumed record as Herald's producer writes it."""
    record_key, value, headers = to_record(EventIn(data=data, key=key))
    return Record(partition, offset, TIMESTAMP_MS, record_key, value, headers)


def outbox(capacity: int = 1000) -> Outbox:
    return Outbox(Format.JSON, capacity)


def received(box: Outbox) -> list[Any]:
    """The data of every event frame waiting in ``box``."""
    frames = box.drain()
    assert all(isinstance(frame, str) for frame in frames)
    return [json.loads(frame)["data"] for frame in frames]


# -- the consumer side ----------------------------------------------------------------------


def test_assign_sets_the_position_and_partition_count() -> None:
    broadcaster = Broadcaster(TOPIC, 10)
    broadcaster.assign(2, 40)
    assert broadcaster.positions == {2: 40}
    assert broadcaster.partition_count == 3


def test_assign_again_does_not_move_the_position() -> None:
    broadcaster = new_broadcaster()
    put(broadcaster, 1)
    broadcaster.assign(0, 0)
    assert broadcaster.positions[0] == 1


def test_a_record_advances_the_position_and_lands_in_the_ring() -> None:
    broadcaster = new_broadcaster()
    event = put(broadcaster, {"n": 1}, partition=1, offset=7)
    assert broadcaster.positions == {0: 0, 1: 8, 2: 0}
    assert list(broadcaster.ring) == [event]
    assert (event.topic, event.partition, event.offset, event.data) == (TOPIC, 1, 7, {"n": 1})


def test_the_ring_holds_at_most_ring_size_newest_events() -> None:
    broadcaster = new_broadcaster(ring_size=3)
    for n in range(5):
        put(broadcaster, n)
    assert [event.data for event in broadcaster.ring] == [2, 3, 4]


def test_covers_a_cursor_while_nothing_after_it_was_evicted() -> None:
    broadcaster = new_broadcaster(ring_size=3)
    start = broadcaster.cursor()
    for n in range(3):
        put(broadcaster, n)
    assert broadcaster.covers(start)


def test_covers_turns_false_once_an_event_after_the_cursor_is_evicted() -> None:
    broadcaster = new_broadcaster(ring_size=3)
    start = broadcaster.cursor()
    for n in range(4):
        put(broadcaster, n)
    assert not broadcaster.covers(start)
    assert broadcaster.covers(Cursor.of({0: 1, 1: 0, 2: 0}))


def test_a_cursor_missing_a_partition_means_offset_zero_there() -> None:
    broadcaster = new_broadcaster(ring_size=1)
    put(broadcaster, 0, partition=2)
    put(broadcaster, 1, partition=2)
    assert not broadcaster.covers(Cursor.of({0: 0, 1: 0}))
    assert broadcaster.covers(Cursor.of({0: 0, 1: 0, 2: 1}))


def test_covers_with_a_key_looks_only_at_the_keys_partition() -> None:
    broadcaster = new_broadcaster(ring_size=2)
    start = broadcaster.cursor()
    for n in range(3):
        put(broadcaster, n, partition=0)
    assert not broadcaster.covers(start, KEY_P0)
    assert broadcaster.covers(start, KEY_P1)
    assert not broadcaster.covers(start)


def test_covers_is_false_for_offsets_before_the_consumer_started() -> None:
    broadcaster = new_broadcaster(start_offset=100)
    assert not broadcaster.covers(Cursor.of({0: 50, 1: 100, 2: 100}))
    assert broadcaster.covers(Cursor.of({0: 100, 1: 100, 2: 100}))


def test_floor_cursor_is_the_oldest_covered_position() -> None:
    broadcaster = new_broadcaster(ring_size=2)
    for n in range(3):
        put(broadcaster, n, partition=0)
    assert broadcaster.floor_cursor() == Cursor.of({0: 1, 1: 0, 2: 0})
    assert broadcaster.covers(broadcaster.floor_cursor())
    assert broadcaster.floor_cursor(KEY_P0) == Cursor(((0, 1),))


# -- the live head --------------------------------------------------------------------------


def test_cursor_without_key_names_every_partition() -> None:
    broadcaster = new_broadcaster()
    put(broadcaster, 0, partition=0)
    put(broadcaster, 1, partition=2)
    assert broadcaster.cursor() == Cursor.of({0: 1, 1: 0, 2: 1})


def test_cursor_with_key_names_only_the_keys_partition() -> None:
    broadcaster = new_broadcaster()
    for key in (KEY_P0, KEY_P1, KEY_P1, KEY_P2):
        put(broadcaster, key, key=key)
    for key in (KEY_P0, KEY_P1, KEY_P2, "any-other-key"):
        partition = partition_for_key(key, PARTITIONS)
        assert broadcaster.cursor(key) == Cursor(((partition, broadcaster.positions[partition]),))


def test_cursor_with_key_before_any_partition_is_known_is_empty() -> None:
    assert Broadcaster(TOPIC, 10).cursor("k") == Cursor()


def test_key_partition_follows_the_default_partitioner() -> None:
    broadcaster = new_broadcaster()
    assert broadcaster.key_partition(KEY_P2) == 2
    assert Broadcaster(TOPIC, 10).key_partition(KEY_P2) is None


# -- recent ---------------------------------------------------------------------------------


def test_recent_returns_the_newest_events_oldest_first() -> None:
    broadcaster = new_broadcaster()
    for n in range(5):
        put(broadcaster, n, partition=n % PARTITIONS)
    assert [event.data for event in broadcaster.recent(None, 3)] == [2, 3, 4]


def test_recent_with_key_returns_only_that_keys_newest_events_oldest_first() -> None:
    broadcaster = new_broadcaster()
    for n, key in enumerate([KEY_P0, KEY_P1, KEY_P0, OTHER_KEY_P0, KEY_P0, KEY_P0]):
        put(broadcaster, n, key=key)
    assert [event.data for event in broadcaster.recent(KEY_P0, 2)] == [4, 5]
    assert [event.data for event in broadcaster.recent(KEY_P0, 10)] == [0, 2, 4, 5]


def test_recent_of_an_unknown_key_is_empty() -> None:
    broadcaster = new_broadcaster()
    put(broadcaster, 0, key=KEY_P0)
    assert broadcaster.recent("nobody", 5) == []


# -- fan-out --------------------------------------------------------------------------------


def test_a_topic_subscription_receives_every_event() -> None:
    broadcaster = new_broadcaster()
    box = outbox()
    broadcaster.subscribe(box, None)
    put(broadcaster, "unkeyed")
    put(broadcaster, "p0", key=KEY_P0)
    put(broadcaster, "p1", key=KEY_P1)
    assert received(box) == ["unkeyed", "p0", "p1"]


def test_a_keyed_subscription_receives_only_its_keys_events() -> None:
    broadcaster = new_broadcaster()
    box = outbox()
    broadcaster.subscribe(box, KEY_P0)
    put(broadcaster, "unkeyed", partition=0)
    put(broadcaster, "mine", key=KEY_P0)
    put(broadcaster, "same partition, other key", key=OTHER_KEY_P0)
    put(broadcaster, "other partition", key=KEY_P1)
    put(broadcaster, "mine again", key=KEY_P0)
    assert received(box) == ["mine", "mine again"]


def test_a_keyed_event_reaches_none_of_ten_thousand_other_key_subscribers() -> None:
    broadcaster = new_broadcaster()
    others = [outbox(1) for _ in range(10_000)]
    for i, box in enumerate(others):
        broadcaster.subscribe(box, f"other-{i}")
    mine, everything = outbox(), outbox()
    broadcaster.subscribe(mine, "target")
    broadcaster.subscribe(everything, None)
    put(broadcaster, "hello", key="target")
    assert all(box.drain() == [] and not box.overflowed for box in others)
    assert received(mine) == ["hello"]
    assert received(everything) == ["hello"]
    assert broadcaster.subscriber_count == 10_002


def test_a_subscription_starts_at_the_live_head_without_replay() -> None:
    broadcaster = new_broadcaster()
    put(broadcaster, "old", key=KEY_P0)
    box = outbox()
    subscription = broadcaster.subscribe(box, KEY_P0)
    assert subscription.cursor == broadcaster.cursor(KEY_P0).encode(TOPIC)
    put(broadcaster, "new", key=KEY_P0)
    assert received(box) == ["new"]


def test_unsubscribe_stops_delivery_and_may_be_repeated() -> None:
    broadcaster = new_broadcaster()
    topic_box, key_box = outbox(), outbox()
    subscriptions = [
        broadcaster.subscribe(topic_box, None),
        broadcaster.subscribe(key_box, KEY_P0),
    ]
    for subscription in subscriptions:
        broadcaster.unsubscribe(subscription)
        broadcaster.unsubscribe(subscription)
    put(broadcaster, "after", key=KEY_P0)
    assert received(topic_box) == []
    assert received(key_box) == []
    assert broadcaster.subscriber_count == 0


def test_event_ids_of_topic_scope_encode_the_whole_position_vector() -> None:
    broadcaster = new_broadcaster()
    put(broadcaster, 0, partition=0)
    put(broadcaster, 1, partition=0)
    put(broadcaster, 2, partition=1)
    event = put(broadcaster, 3, partition=1)
    assert Cursor.decode(TOPIC, event.id(Scope.TOPIC)) == Cursor.of({0: 2, 1: 2, 2: 0})


def test_event_ids_of_partition_scope_are_the_cursor_after_the_record() -> None:
    broadcaster = new_broadcaster()
    put(broadcaster, 0, key=KEY_P2)
    event = put(broadcaster, 1, key=KEY_P2)
    assert Cursor.decode(TOPIC, event.id(Scope.PARTITION)) == Cursor.after(2, 1)


def test_on_a_one_partition_topic_both_scopes_give_the_same_id() -> None:
    broadcaster = Broadcaster(TOPIC, 10)
    broadcaster.assign(0, 5)
    event = put(broadcaster, "x", partition=0)
    assert event.id(Scope.TOPIC) == event.id(Scope.PARTITION)


def test_delivered_ids_follow_the_subscription_scope() -> None:
    broadcaster = new_broadcaster()
    topic_box, key_box = outbox(), outbox()
    topic_sub = broadcaster.subscribe(topic_box, None)
    key_sub = broadcaster.subscribe(key_box, KEY_P1)
    event = put(broadcaster, "x", key=KEY_P1)
    assert json.loads(topic_box.drain()[0])["id"] == event.id(Scope.TOPIC) == topic_sub.cursor
    assert json.loads(key_box.drain()[0])["id"] == event.id(Scope.PARTITION) == key_sub.cursor


# -- resume ---------------------------------------------------------------------------------


def test_subscribe_since_replays_the_ring_after_the_cursor_then_continues_live() -> None:
    broadcaster = new_broadcaster()
    events = [put(broadcaster, n, partition=n % PARTITIONS) for n in range(6)]
    box = outbox()
    broadcaster.subscribe(box, None, since=Cursor.decode(TOPIC, events[2].id(Scope.TOPIC)))
    assert received(box) == [3, 4, 5]
    put(broadcaster, 6, partition=0)
    put(broadcaster, 7, partition=2)
    assert received(box) == [6, 7]


def test_subscribe_since_with_a_key_replays_only_that_keys_later_events() -> None:
    broadcaster = new_broadcaster()
    mine = []
    for n, key in enumerate([KEY_P0, KEY_P1, OTHER_KEY_P0, KEY_P0, KEY_P0, KEY_P2]):
        event = put(broadcaster, n, key=key)
        if key == KEY_P0:
            mine.append(event)
    box = outbox()
    since = Cursor.decode(TOPIC, mine[0].id(Scope.PARTITION))
    broadcaster.subscribe(box, KEY_P0, since=since)
    assert received(box) == [3, 4]
    put(broadcaster, 6, key=OTHER_KEY_P0)
    put(broadcaster, 7, key=KEY_P0)
    assert received(box) == [7]


def test_resuming_from_the_last_delivered_id_repeats_nothing() -> None:
    broadcaster = new_broadcaster()
    box = outbox()
    subscription = broadcaster.subscribe(box, None)
    for n in range(4):
        put(broadcaster, n, partition=n % 2)
    assert received(box) == [0, 1, 2, 3]
    resumed = outbox()
    broadcaster.subscribe(resumed, None, since=Cursor.decode(TOPIC, subscription.cursor))
    assert received(resumed) == []
    put(broadcaster, 4, partition=1)
    assert received(resumed) == [4]


def test_subscribe_since_the_start_replays_the_whole_ring_once() -> None:
    broadcaster = new_broadcaster()
    start = broadcaster.cursor()
    for n in range(5):
        put(broadcaster, n, partition=n % PARTITIONS)
    box = outbox()
    subscription = broadcaster.subscribe(box, None, since=start)
    assert subscription.cursor == start.encode(TOPIC)
    assert received(box) == [0, 1, 2, 3, 4]
    assert received(box) == []


def test_a_cursor_ahead_of_the_broadcaster_skips_events_it_already_covers() -> None:
    broadcaster = new_broadcaster()
    put(broadcaster, "seen 0", partition=0)
    put(broadcaster, "seen 1", partition=0)
    box = outbox()
    # From an instance that has read partition 0 up to offset 4 already.
    subscription = broadcaster.subscribe(box, None, since=Cursor.of({0: 4, 1: 0, 2: 0}))
    assert subscription.skip_below == {0: 4}
    assert received(box) == []
    put(broadcaster, "seen 2", partition=0)
    put(broadcaster, "p1 new", partition=1)
    put(broadcaster, "seen 3", partition=0)
    put(broadcaster, "p0 new", partition=0)
    assert received(box) == ["p1 new", "p0 new"]


def test_a_keyed_cursor_ahead_of_the_broadcaster_skips_events_it_already_covers() -> None:
    broadcaster = new_broadcaster()
    box = outbox()
    broadcaster.subscribe(box, KEY_P1, since=Cursor(((1, 2),)))
    put(broadcaster, "seen 0", key=KEY_P1)
    put(broadcaster, "seen 1", key=KEY_P1)
    put(broadcaster, "new", key=KEY_P1)
    assert received(box) == ["new"]


def test_a_replay_longer_than_the_outbox_marks_it_overflowed() -> None:
    broadcaster = new_broadcaster()
    start = broadcaster.cursor()
    for n in range(5):
        put(broadcaster, n)
    box = outbox(2)
    broadcaster.subscribe(box, None, since=start)
    assert box.overflowed
    assert received(box) == [0, 1]


# -- overflow -------------------------------------------------------------------------------


def test_an_outbox_overflow_unsubscribes_and_marks_overflowed() -> None:
    broadcaster = new_broadcaster()
    box = outbox(2)
    subscription = broadcaster.subscribe(box, None)
    for n in range(3):
        put(broadcaster, n)
    assert box.overflowed
    assert broadcaster.subscriber_count == 0
    put(broadcaster, 3)
    assert received(box) == [0, 1]
    assert Cursor.decode(TOPIC, subscription.cursor) == Cursor.of({0: 2, 1: 0, 2: 0})


def test_a_keyed_overflow_unsubscribes_only_the_lagging_subscription() -> None:
    broadcaster = new_broadcaster()
    slow, fast = outbox(1), outbox()
    broadcaster.subscribe(slow, KEY_P0)
    broadcaster.subscribe(fast, KEY_P0)
    for n in range(3):
        put(broadcaster, n, key=KEY_P0)
    assert slow.overflowed
    assert not fast.overflowed
    assert broadcaster.subscriber_count == 1
    assert received(slow) == [0]
    assert received(fast) == [0, 1, 2]


# -- Broadcasters ---------------------------------------------------------------------------


def test_broadcasters_creates_one_broadcaster_per_topic_on_first_use() -> None:
    broadcasters = Broadcasters(Settings(ring_size=7))
    orders = broadcasters.get("orders")
    assert broadcasters.get("orders") is orders
    payments = broadcasters.get("payments")
    assert (orders.topic, payments.topic) == ("orders", "payments")
    assert orders.ring.maxlen == 7
    assert list(broadcasters) == [orders, payments]


# -- resuming with a cursor of another instance ----------------------------------------------


def test_ids_after_a_resume_never_fall_below_the_cursor_brought_from_another_instance() -> None:
    """This instance read e (partition 0) before r (partition 1); the client's instance gave
    it r first, so its cursor is {0: 0, 1: 1}. Resuming here must deliver e with an id that
    still covers r: otherwise a second resume from e's id would repeat r."""
    broadcaster = new_broadcaster()
    put(broadcaster, "e", partition=0)
    put(broadcaster, "r", partition=1)
    held = Cursor.of({0: 0, 1: 1})
    box = outbox()
    broadcaster.subscribe(box, None, held)
    frames = [json.loads(frame) for frame in box.drain()]
    assert [frame["data"] for frame in frames] == ["e"]
    assert Cursor.decode(TOPIC, frames[0]["id"]).as_dict() == {0: 1, 1: 1, 2: 0}
    # Once this instance's own cursor covers the held one, frames are shared again.
    shared = put(broadcaster, "next", partition=2)
    assert [json.loads(frame)["id"] for frame in box.drain()] == [shared.id(Scope.TOPIC)]


class Socket:
    """A connection's socket that takes every run at once, recording each write."""

    def __init__(self) -> None:
        self.writes: list[list[int]] = []

    def deliver(self, run: EventRun) -> bool:
        self.writes.append([event.data["n"] for event in run.events])
        return True


def take(broadcaster: Broadcaster, n: int) -> Event:
    event = broadcaster.take_record(record({"n": n}, None, 0, broadcaster.positions[0]))
    assert event is not None
    return event


def direct_subscriber(broadcaster: Broadcaster) -> tuple[Outbox, Socket]:
    box = outbox()
    socket = box.direct = Socket()
    broadcaster.subscribe(box, None)
    return box, socket


async def written(broadcaster: Broadcaster) -> None:
    """Let the loop run until ``broadcaster`` has written every event it took."""
    for _turn in range(10_000):
        if not broadcaster.busy:
            return
        await asyncio.sleep(0)  # one turn of the loop: the next slice of the fan-out
    raise AssertionError("the fan-out never finished")


async def test_a_fan_out_is_written_a_slice_of_subscribers_per_turn_of_the_loop() -> None:
    broadcaster = Broadcaster(TOPIC, 100)
    broadcaster.assign(0, 0)
    sockets = [direct_subscriber(broadcaster)[1] for _ in range(SLICE * 2 + 1)]
    broadcaster.offer([take(broadcaster, 0)])
    assert sum(socket.writes == [[0]] for socket in sockets) == SLICE
    await written(broadcaster)
    assert all(socket.writes == [[0]] for socket in sockets)


async def test_events_offered_while_a_fan_out_is_written_reach_everyone_together_next() -> None:
    broadcaster = Broadcaster(TOPIC, 100)
    broadcaster.assign(0, 0)
    sockets = [direct_subscriber(broadcaster)[1] for _ in range(SLICE + 1)]
    broadcaster.offer([take(broadcaster, 0)])  # the first after a quiet spell: at once
    broadcaster.offer([take(broadcaster, 1)])
    broadcaster.offer([take(broadcaster, 2)])
    assert sum(socket.writes == [] for socket in sockets) == 1  # the slice still to come
    await written(broadcaster)
    assert all(socket.writes == [[0], [1, 2]] for socket in sockets)


async def test_without_a_pause_every_offer_to_a_written_topic_fans_out_at_once() -> None:
    broadcaster = Broadcaster(TOPIC, 100)
    broadcaster.assign(0, 0)
    _box, socket = direct_subscriber(broadcaster)
    for n in range(3):
        broadcaster.offer([take(broadcaster, n)])
    broadcaster.offer([take(broadcaster, 3), take(broadcaster, 4)])
    assert socket.writes == [[0], [1], [2], [3, 4]]


class CostlySocket(Socket):
    """A socket whose every write takes ``cost_s`` of the fan-out's clock."""

    def __init__(self, clock: list[float], cost_s: float) -> None:
        super().__init__()
        self.clock = clock
        self.cost_s = cost_s

    def deliver(self, run: EventRun) -> bool:
        self.clock[0] += self.cost_s
        return super().deliver(run)


async def test_the_pause_after_a_fan_out_is_its_writing_time_times_fan_out_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(fan_out_module, "perf_counter", lambda: clock[0])
    broadcaster = Broadcaster(TOPIC, 100, fan_out_pause=2.0)
    broadcaster.assign(0, 0)
    boxes = []
    for _ in range(10):
        box = outbox()
        box.direct = CostlySocket(clock, cost_s=0.001)
        broadcaster.subscribe(box, None)
        boxes.append(box)
    loop = asyncio.get_running_loop()
    started = loop.time()
    broadcaster.offer([take(broadcaster, 0)])
    # 10 writes of 1 ms: the next fan-out starts 10 ms + 2 x 10 ms after this one did.
    assert broadcaster.next_fan_out == pytest.approx(started + 0.030, abs=0.002)
    for box in boxes:
        box.direct = None  # from here the outbox queue shows when the held events arrive
    broadcaster.offer([take(broadcaster, 1)])
    broadcaster.offer([take(broadcaster, 2)])
    assert all(box.pending == 0 for box in boxes)  # held until the pause is over
    assert await boxes[0].wait(within=5)
    assert all(received(box) == [{"n": 1}, {"n": 2}] for box in boxes)


async def test_a_new_subscriber_starts_after_held_events_which_reach_the_others_once() -> None:
    broadcaster = Broadcaster(TOPIC, 100, fan_out_pause=1e9)
    broadcaster.assign(0, 0)
    _old_box, old = direct_subscriber(broadcaster)
    broadcaster.offer([take(broadcaster, 0)])
    broadcaster.offer([take(broadcaster, 1)])
    assert old.writes == [[0]]
    new_box, new = direct_subscriber(broadcaster)
    assert old.writes == [[0], [1]]
    assert new.writes == [] and new_box.pending == 0
    (subscription,) = [s for s in broadcaster._all if s.outbox is new_box]
    assert subscription.cursor == broadcaster.cursor().encode(TOPIC)


async def test_a_subscriber_joining_during_a_fan_out_gets_nothing_of_it_and_all_after() -> None:
    broadcaster = Broadcaster(TOPIC, 100)
    broadcaster.assign(0, 0)
    old = [direct_subscriber(broadcaster)[1] for _ in range(SLICE + 1)]
    broadcaster.offer([take(broadcaster, 0)])
    broadcaster.offer([take(broadcaster, 1)])  # waits for the fan-out being written
    _new_box, new = direct_subscriber(broadcaster)
    # Joining finished that fan-out and started the waiting event's: the joiner starts after.
    await written(broadcaster)
    assert all(socket.writes == [[0], [1]] for socket in old)
    assert new.writes == []
    broadcaster.offer([take(broadcaster, 2)])
    await written(broadcaster)
    assert all(socket.writes == [[0], [1], [2]] for socket in old)
    assert new.writes == [[2]]


async def test_a_resume_from_the_ring_gets_held_events_once() -> None:
    broadcaster = Broadcaster(TOPIC, 100, fan_out_pause=1e9)
    broadcaster.assign(0, 0)
    start = broadcaster.cursor()
    broadcaster.offer([take(broadcaster, 0)])
    broadcaster.offer([take(broadcaster, 1)])
    box = outbox()
    broadcaster.subscribe(box, None, since=start)
    broadcaster.offer([take(broadcaster, 2)])
    broadcaster.flush()
    assert received(box) == [{"n": n} for n in range(3)]


def test_a_topic_kafka_does_not_have_keeps_no_broadcaster_once_nobody_waits() -> None:
    broadcasters = Broadcasters(Settings())
    waiting = broadcasters.get("not-yet")
    subscription = waiting.subscribe(Outbox(Format.JSON, 10), None)
    broadcasters.release("not-yet")
    assert broadcasters.get("not-yet") is waiting  # still subscribed: kept
    waiting.unsubscribe(subscription)
    broadcasters.release("not-yet")
    assert len(broadcasters) == 0
    # A topic the consumer reads is kept, subscribers or not.
    broadcasters.get("real").assign(0, 0)
    broadcasters.release("real")
    assert len(broadcasters) == 1


class FailingOnceSocket(Socket):
    """A socket whose first write fails as no socket should."""

    def deliver(self, run: EventRun) -> bool:
        if not self.writes:
            self.writes.append([])
            raise RuntimeError("broken write")
        return super().deliver(run)


async def test_a_fan_out_that_fails_does_not_hold_back_the_topics_later_events() -> None:
    broadcaster = Broadcaster(TOPIC, 100)
    broadcaster.assign(0, 0)
    box = outbox()
    socket = box.direct = FailingOnceSocket()
    broadcaster.subscribe(box, None)
    with pytest.raises(RuntimeError):
        broadcaster.offer([take(broadcaster, 0)])
    assert not broadcaster.busy
    broadcaster.offer([take(broadcaster, 1)])
    assert socket.writes == [[], [1]]
