"""service/pulse.py: heartbeats after silence, the deadline of a stuck write."""

from __future__ import annotations

import asyncio
import time

from service.outbox import Outbox
from service.pulse import Pulse
from service.wire import Format


async def test_the_pulse_queues_a_heartbeat_after_silence() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    pulse = Pulse(outbox, "beat", heartbeat_s=0.01)
    pulse.start()
    try:
        await outbox.wait()
        assert outbox.drain() == ["beat"]
    finally:
        pulse.stop()


async def test_the_pulse_sends_no_heartbeat_during_a_write() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    stuck = asyncio.Event()
    # A write that began long ago and has not finished: stuck, not silent.
    outbox.writing_since = time.monotonic() - 100
    pulse = Pulse(outbox, "beat", heartbeat_s=0.01, send_timeout_s=0.02, on_stuck=stuck.set)
    pulse.start()
    try:
        await stuck.wait()
        assert outbox.drain() == []
    finally:
        pulse.stop()


async def test_the_pulse_leaves_a_write_within_its_deadline_alone() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    stuck = asyncio.Event()
    outbox.writing_since = time.monotonic()
    pulse = Pulse(outbox, "beat", heartbeat_s=0.01, send_timeout_s=3600, on_stuck=stuck.set)
    pulse.start()
    try:
        # The write ends; the pulse goes back to heartbeats, and never calls it stuck.
        outbox.writing_since = 0.0
        await outbox.wait()
        assert outbox.drain() == ["beat"]
        assert not stuck.is_set()
    finally:
        pulse.stop()


async def test_a_write_brings_a_quiet_pulse_forward_to_its_deadline() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    stuck = asyncio.Event()
    # A quiet connection's timer is an hour away; a write that never ends is still caught.
    pulse = Pulse(outbox, "beat", heartbeat_s=3600, send_timeout_s=0.01, on_stuck=stuck.set)
    pulse.start()
    try:
        pulse.writing(time.monotonic())
        await stuck.wait()
        assert outbox.drain() == []
    finally:
        pulse.stop()
