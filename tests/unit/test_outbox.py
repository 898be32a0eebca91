"""service/outbox.py: a bounded per-connection queue that says when it overflowed."""

from __future__ import annotations

import asyncio
import json
import time

from service.cursor import Cursor
from service.events import Event, EventIn, EventRun, Scope
from service.metrics import LATENCY_BOUNDS, Latency, Tally
from service.outbox import Outbox
from service.records import event_from_record, to_record
from service.subscription import Subscription
from service.wire import Format, event_frame, event_ws_frame, ws_frame

TOPIC = "orders"


def make_event(offset: int, key: str | None = None, partition: int = 0) -> Event:
    record_key, value, headers = to_record(EventIn(data={"n": offset}, key=key))
    return event_from_record(
        TOPIC,
        partition,
        offset,
        1714564800123,
        record_key,
        value,
        headers,
        Cursor.of({partition: offset + 1, 9: 3}),
    )


def subscribe(outbox: Outbox, key: str | None = None) -> Subscription:
    return Subscription(TOPIC, key, outbox, cursor=Cursor().encode(TOPIC))


def data_of(frames: list[bytes | str]) -> list[object]:
    """The ``data`` of JSON event frames, control frames as they are."""
    return [
        json.loads(f)["data"] if isinstance(f, str) and f.startswith('{"op":"event"') else f
        for f in frames
    ]


# -- capacity and overflow ------------------------------------------------------------------


def test_put_event_accepts_up_to_capacity() -> None:
    outbox = Outbox(Format.JSON, capacity=3)
    sub = subscribe(outbox)
    assert all(outbox.put_event(sub, make_event(i)) for i in range(3))
    assert not outbox.overflowed
    assert len(outbox.drain()) == 3


def test_one_event_past_capacity_overflows_and_is_not_queued() -> None:
    outbox = Outbox(Format.JSON, capacity=2)
    sub = subscribe(outbox)
    outbox.put_event(sub, make_event(0))
    outbox.put_event(sub, make_event(1))
    assert outbox.put_event(sub, make_event(2)) is False
    assert outbox.overflowed
    assert data_of(outbox.drain()) == [{"n": 0}, {"n": 1}]


def test_overflow_is_sticky_after_drain() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    sub = subscribe(outbox)
    outbox.put_event(sub, make_event(0))
    outbox.put_event(sub, make_event(1))
    outbox.drain()
    assert outbox.put_event(sub, make_event(2)) is False
    assert outbox.overflowed
    assert outbox.drain() == []


def test_drain_frees_capacity() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    sub = subscribe(outbox)
    assert outbox.put_event(sub, make_event(0))
    outbox.drain()
    assert outbox.put_event(sub, make_event(1))
    assert not outbox.overflowed


def test_control_frames_do_not_count_against_capacity() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    sub = subscribe(outbox)
    for i in range(10):
        outbox.put_control(f"control-{i}")
    assert outbox.put_event(sub, make_event(0))
    assert not outbox.overflowed
    assert len(outbox.drain()) == 11


def test_capacity_is_shared_by_every_subscription_of_the_outbox() -> None:
    outbox = Outbox(Format.JSON, capacity=2)
    first, second = subscribe(outbox), subscribe(outbox, "k")
    assert outbox.put_event(first, make_event(0))
    assert outbox.put_event(second, make_event(1, key="k"))
    assert outbox.put_event(first, make_event(2)) is False
    assert outbox.overflowed


def test_a_catch_up_fills_half_the_queue_and_says_how_much_it_took() -> None:
    outbox = Outbox(Format.JSON, capacity=10)
    sub = subscribe(outbox)
    events = [make_event(i) for i in range(8)]
    assert outbox.put_catch_up(sub, events) == 5
    assert outbox.put_catch_up(sub, events[5:]) == 0  # no room until the writer drains
    assert data_of(outbox.drain()) == [{"n": i} for i in range(5)]
    assert outbox.put_catch_up(sub, events[5:]) == 3
    assert data_of(outbox.drain()) == [{"n": i} for i in range(5, 8)]
    assert not outbox.overflowed


async def test_a_catch_up_waits_for_room_until_the_writer_drains() -> None:
    outbox = Outbox(Format.JSON, capacity=4)
    sub = subscribe(outbox)
    assert outbox.put_catch_up(sub, [make_event(i) for i in range(3)]) == 2
    waiting = asyncio.ensure_future(outbox.room_for_catch_up())
    await asyncio.sleep(0)
    assert not waiting.done()  # the catch-up half is full
    outbox.drain()
    assert await waiting is True
    assert outbox.put_catch_up(sub, [make_event(2)]) == 1


async def test_a_catch_up_waiting_for_room_stops_when_the_outbox_closes() -> None:
    outbox = Outbox(Format.JSON, capacity=2)
    assert outbox.put_catch_up(subscribe(outbox), [make_event(0)]) == 1
    waiting = asyncio.ensure_future(outbox.room_for_catch_up())
    await asyncio.sleep(0)
    outbox.close()
    assert await waiting is False


def test_a_catch_up_into_a_closed_or_overflowed_queue_takes_nothing() -> None:
    closed, overflowed = Outbox(Format.JSON, capacity=10), Outbox(Format.JSON, capacity=1)
    closed.close()
    overflowed.put_event(subscribe(overflowed), make_event(0))
    overflowed.put_event(subscribe(overflowed), make_event(1))
    assert overflowed.overflowed
    for outbox in (closed, overflowed):
        assert outbox.put_catch_up(subscribe(outbox), [make_event(2)]) == 0


def test_a_catch_up_under_a_floor_queues_the_raised_ids() -> None:
    outbox = Outbox(Format.JSON, capacity=10)
    sub = subscribe(outbox)
    sub.floor = {0: 0, 9: 7}  # ahead of the events' own cursors on partition 9
    assert outbox.put_catch_up(sub, [make_event(0)]) == 1
    (frame,) = outbox.drain()
    assert isinstance(frame, str)
    assert json.loads(frame)["id"] == Cursor.of({0: 1, 9: 7}).encode(TOPIC)


# -- ordering -------------------------------------------------------------------------------


def test_drain_keeps_the_order_of_events_and_control_frames() -> None:
    outbox = Outbox(Format.JSON, capacity=10)
    sub = subscribe(outbox)
    outbox.put_event(sub, make_event(0))
    outbox.put_control("ack")
    outbox.put_event(sub, make_event(1))
    assert data_of(outbox.drain()) == [{"n": 0}, "ack", {"n": 1}]


def test_put_control_first_goes_ahead_of_the_subscriptions_queued_events() -> None:
    outbox = Outbox(Format.JSON, capacity=10)
    other, sub = subscribe(outbox, "other"), subscribe(outbox, "mine")
    outbox.put_event(other, make_event(0, key="other"))
    outbox.put_control("ack")
    outbox.put_event(sub, make_event(1, key="mine"))
    outbox.put_event(other, make_event(2, key="other"))
    outbox.put_event(sub, make_event(3, key="mine"))
    outbox.put_control_first(["subscribed", "reset"], sub)
    assert data_of(outbox.drain()) == [
        {"n": 0},
        "ack",
        "subscribed",
        "reset",
        {"n": 1},
        {"n": 2},
        {"n": 3},
    ]


def test_put_control_first_without_queued_events_appends() -> None:
    outbox = Outbox(Format.JSON, capacity=10)
    other, sub = subscribe(outbox, "other"), subscribe(outbox, "mine")
    outbox.put_event(other, make_event(0, key="other"))
    outbox.put_control_first(["subscribed"], sub)
    assert data_of(outbox.drain()) == [{"n": 0}, "subscribed"]


# -- drain ----------------------------------------------------------------------------------


def test_drain_returns_frames_in_the_outbox_format() -> None:
    for fmt in Format:
        outbox = Outbox(fmt, capacity=10)
        sub = subscribe(outbox, "k")
        event = make_event(0, key="k")
        outbox.put_event(sub, event)
        assert outbox.drain() == [event_frame(event, fmt, Scope.PARTITION)]


def test_drain_advances_a_keyed_subscriptions_cursor_to_the_partition_id() -> None:
    outbox = Outbox(Format.JSON, capacity=10)
    sub = subscribe(outbox, "k")
    events = [make_event(i, key="k", partition=2) for i in range(3)]
    for event in events:
        outbox.put_event(sub, event)
    outbox.drain()
    assert sub.cursor == events[-1].id(Scope.PARTITION)
    assert Cursor.decode(TOPIC, sub.cursor) == Cursor.after(2, 2)


def test_drain_advances_a_topic_subscriptions_cursor_to_the_topic_id() -> None:
    outbox = Outbox(Format.JSON, capacity=10)
    sub = subscribe(outbox)
    event = make_event(5)
    outbox.put_event(sub, event)
    outbox.drain()
    assert sub.cursor == event.id(Scope.TOPIC)


def test_queued_but_undrained_events_do_not_advance_the_cursor() -> None:
    outbox = Outbox(Format.JSON, capacity=10)
    sub = subscribe(outbox)
    start = sub.cursor
    outbox.put_event(sub, make_event(0))
    assert sub.cursor == start


def test_drain_of_an_empty_outbox_is_empty() -> None:
    assert Outbox(Format.JSON, capacity=1).drain() == []


# -- wait and close -------------------------------------------------------------------------


async def test_wait_returns_false_on_timeout_when_nothing_is_queued() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    assert await outbox.wait(within=0) is False


async def test_wait_returns_true_when_an_event_is_queued() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    outbox.put_event(subscribe(outbox), make_event(0))
    assert await outbox.wait(within=0) is True


async def test_wait_returns_true_when_a_control_frame_is_queued() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    outbox.put_control("pong")
    assert await outbox.wait(within=0) is True


async def test_wait_is_false_again_after_drain() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    outbox.put_control("pong")
    outbox.drain()
    assert await outbox.wait(within=0) is False


async def test_a_blocked_waiter_wakes_when_an_event_is_queued() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    waiter = asyncio.create_task(outbox.wait())
    # Runs after the waiter's first step, so the waiter is blocked when the event arrives.
    asyncio.get_running_loop().call_soon(outbox.put_event, subscribe(outbox), make_event(0))
    assert await waiter is True


async def test_close_wakes_a_blocked_waiter() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    waiter = asyncio.create_task(outbox.wait())
    asyncio.get_running_loop().call_soon(outbox.close)
    assert await waiter is True
    assert outbox.closed


async def test_overflow_wakes_a_blocked_waiter() -> None:
    outbox = Outbox(Format.JSON, capacity=0)
    waiter = asyncio.create_task(outbox.wait())
    asyncio.get_running_loop().call_soon(outbox.put_event, subscribe(outbox), make_event(0))
    assert await waiter is True
    assert outbox.overflowed


async def test_a_closed_outbox_stays_ready_after_drain() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    outbox.close()
    outbox.drain()
    assert await outbox.wait(within=0) is True


async def test_an_overflowed_outbox_stays_ready_after_drain() -> None:
    outbox = Outbox(Format.JSON, capacity=0)
    outbox.put_event(subscribe(outbox), make_event(0))
    outbox.drain()
    assert await outbox.wait(within=0) is True


def test_a_closed_outbox_takes_nothing_more() -> None:
    outbox = Outbox(Format.JSON, capacity=5)
    sub = subscribe(outbox)
    outbox.close()
    assert outbox.put_event(sub, make_event(0)) is False
    outbox.put_control("ack")
    outbox.put_control_first(["reset"], sub)
    assert outbox.drain() == []
    assert not outbox.overflowed


def test_drain_ws_frames_gives_whole_frames_in_order_and_advances_cursors() -> None:
    outbox = Outbox(Format.JSON, capacity=10)
    subscription = subscribe(outbox, key="k")
    event = make_event(0, key="k")
    outbox.put_control('{"op":"pong"}')
    outbox.put_event(subscription, event)
    frames = outbox.drain_ws_frames()
    assert frames == [
        ws_frame('{"op":"pong"}'),
        event_ws_frame(event, Format.JSON, Scope.PARTITION),
    ]
    assert subscription.cursor == event.id(Scope.PARTITION)
    assert outbox.drained_events == 1


class Socket:
    """A DirectWrite that takes what it is given, or refuses while ``busy``."""

    def __init__(self) -> None:
        self.written: list[list[int]] = []
        self.busy = False

    def deliver(self, run: EventRun) -> bool:
        if self.busy:
            return False
        self.written.append([event.offset for event in run.events])
        return True

    def abort(self) -> None:
        raise AssertionError("no test here aborts a connection")


def direct_outbox(capacity: int = 1000) -> tuple[Outbox, Socket]:
    box = Outbox(Format.JSON, capacity)
    socket = box.direct = Socket()
    return box, socket


def test_an_idle_outbox_writes_a_run_at_once_and_moves_the_cursor() -> None:
    box, socket = direct_outbox()
    sub = subscribe(box)
    run = EventRun([make_event(0), make_event(1)], Scope.TOPIC)
    assert box.put_run(sub, run)
    assert socket.written == [[0, 1]]
    assert box.pending == 0
    assert sub.cursor == run.events[-1].id(Scope.TOPIC)


def test_a_run_queues_behind_waiting_frames_so_order_holds() -> None:
    box, socket = direct_outbox()
    sub = subscribe(box)
    box.put_control("hello")
    assert box.put_run(sub, EventRun([make_event(0)], Scope.TOPIC))
    assert socket.written == []
    assert data_of(box.drain()) == ["hello", {"n": 0}]


def test_a_run_queues_while_the_writer_is_inside_a_write() -> None:
    box, socket = direct_outbox()
    box.writing_since = time.monotonic()
    assert box.put_run(subscribe(box), EventRun([make_event(0)], Scope.TOPIC))
    assert socket.written == [] and box.pending == 1


def test_a_run_queues_while_the_socket_has_not_taken_earlier_bytes() -> None:
    box, socket = direct_outbox()
    socket.busy = True
    sub = subscribe(box)
    assert box.put_run(sub, EventRun([make_event(0), make_event(1)], Scope.TOPIC))
    assert data_of(box.drain()) == [{"n": 0}, {"n": 1}]


def test_a_run_queues_while_held_and_is_written_directly_after() -> None:
    box, socket = direct_outbox()
    sub = subscribe(box)
    with box.holding():
        box.put_run(sub, EventRun([make_event(0)], Scope.TOPIC))
        box.put_control_first(["subscribed"], sub)
    assert socket.written == []
    assert data_of(box.drain()) == ["subscribed", {"n": 0}]
    box.put_run(sub, EventRun([make_event(1)], Scope.TOPIC))
    assert socket.written == [[1]]


def test_a_queued_run_still_overflows_a_full_outbox() -> None:
    box, socket = direct_outbox(capacity=2)
    socket.busy = True
    sub = subscribe(box)
    assert not box.put_run(sub, EventRun([make_event(n) for n in range(3)], Scope.TOPIC))
    assert box.overflowed
    socket.busy = False
    assert not box.put_run(sub, EventRun([make_event(3)], Scope.TOPIC))
    assert socket.written == []


# -- mode=latest -----------------------------------------------------------------------------


def latest_subscription(outbox: Outbox) -> Subscription:
    return Subscription(TOPIC, None, outbox, cursor=Cursor().encode(TOPIC), latest=True)


def test_a_latest_subscription_keeps_only_the_newest_waiting_event_of_each_key() -> None:
    outbox = Outbox(Format.JSON, capacity=10)
    sub = latest_subscription(outbox)
    keyed = [make_event(n, key) for n, key in enumerate(["a", "b", "a", "b", "a", None, None])]
    for event in keyed:
        assert outbox.put_event(sub, event)
    frames = outbox.drain()
    messages = [json.loads(frame) for frame in frames if isinstance(frame, str)]
    assert [(m["op"], m.get("key"), m.get("count"), m.get("data")) for m in messages] == [
        ("skipped", "b", 1, None),
        ("event", "b", None, {"n": 3}),
        ("skipped", "a", 2, None),
        ("event", "a", None, {"n": 4}),
        ("skipped", None, 1, None),
        ("event", None, None, {"n": 6}),
    ]
    # The cursor moved past everything, the skipped events included.
    assert sub.cursor == keyed[-1].id(Scope.TOPIC)
    assert outbox.drained_events == 3


def test_a_latest_subscription_counts_only_what_waits_against_the_capacity() -> None:
    outbox = Outbox(Format.JSON, capacity=2)
    sub = latest_subscription(outbox)
    for n in range(100):
        assert outbox.put_event(sub, make_event(n, "same-key"))
    assert not outbox.overflowed
    assert outbox.put_event(sub, make_event(100, "other"))
    # A third key while two wait: it overflows like any subscription.
    assert not outbox.put_event(sub, make_event(101, "third"))
    assert outbox.overflowed


def test_an_ordinary_subscription_of_the_same_outbox_keeps_every_event() -> None:
    outbox = Outbox(Format.SSE, capacity=10)
    every, latest = subscribe(outbox), latest_subscription(outbox)
    for n in range(3):
        event = make_event(n, "k")
        outbox.put_event(every, event)
        outbox.put_event(latest, event)
    text = b"".join(f for f in outbox.drain() if isinstance(f, bytes)).decode()
    assert text.count("event: message") == 4  # 3 for every, 1 for latest
    assert text.count("event: skipped") == 1


def test_a_latest_catch_up_is_conflated_as_it_is_queued() -> None:
    outbox = Outbox(Format.JSON, capacity=4)
    sub = latest_subscription(outbox)
    assert outbox.put_catch_up(sub, [make_event(n, "k") for n in range(50)]) == 50
    assert data_of(outbox.drain())[-1] == {"n": 49}


def fresh_event(offset: int, age_s: float, key: str | None = None) -> Event:
    """An event published ``age_s`` ago (its record's timestamp)."""
    record_key, value, headers = to_record(EventIn(data={"n": offset}, key=key))
    timestamp_ms = int((time.time() - age_s) * 1000)
    cursor = Cursor.of({0: offset + 1})
    return event_from_record(TOPIC, 0, offset, timestamp_ms, record_key, value, headers, cursor)


def test_live_deliveries_count_their_latency_when_written_replays_do_not() -> None:
    latency = Latency()
    box, socket = direct_outbox()
    box.latency = latency
    sub = subscribe(box)
    # Written at once: counted at once, one delivery per event.
    assert box.put_run(sub, EventRun([fresh_event(0, 0.2), fresh_event(1, 0.1)], Scope.TOPIC))
    assert sum(latency.buckets) == 2
    socket.busy = True
    assert box.put_event(sub, fresh_event(2, 300))  # a replay (from the ring): not live
    assert box.put_run(sub, EventRun([fresh_event(3, 2.0)], Scope.TOPIC))
    box.drain()
    assert sum(latency.buckets) == 2  # not before the write is done
    box.written()
    # The write's two deliveries count with the age of its oldest live event (2 s).
    assert sum(latency.buckets) == 4
    assert latency.buckets[LATENCY_BOUNDS.index(2.5)] == 2
    box.written()
    assert sum(latency.buckets) == 4  # a write counts once


def test_events_a_newer_one_replaced_are_counted_as_superseded() -> None:
    superseded = Tally()
    box = Outbox(Format.JSON, 10, superseded=superseded)
    sub = Subscription(TOPIC, None, box, cursor=Cursor().encode(TOPIC), latest=True)
    for offset in range(4):
        assert box.put_event(sub, fresh_event(offset, 0.0, key="k"))
    assert superseded.count == 3
