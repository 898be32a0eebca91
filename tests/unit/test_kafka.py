"""service/kafka/__init__.py: closing a Kafka client in a cleanup (``quietly``)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from service.kafka import quietly


async def cancel_of_its_own() -> None:
    """What aiokafka can raise: the CancelledError of a task of its own it cancelled and
    awaited (its fetcher on stop(); aiokafka issue 647), nobody having cancelled the caller."""
    fetching = asyncio.ensure_future(asyncio.sleep(3600))
    await asyncio.sleep(0)
    fetching.cancel()
    await fetching


async def stop_that_fails() -> None:
    raise KafkaConnectionError("Connection at 127.0.0.1:9092 closed")


async def test_a_cancel_the_client_raised_of_its_own_is_kept_from_the_caller() -> None:
    with pytest.raises(asyncio.CancelledError):
        await cancel_of_its_own()  # what the caller would otherwise get
    await quietly(cancel_of_its_own())


async def test_what_a_close_raises_is_kept_from_the_caller() -> None:
    await quietly(stop_that_fails())


async def test_a_cancel_of_the_caller_still_ends_it() -> None:
    closing = asyncio.Event()

    async def slow_stop() -> None:
        closing.set()
        await asyncio.sleep(3600)

    caller = asyncio.create_task(quietly(slow_stop()))
    await closing.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()


async def test_a_cancel_of_the_caller_that_meets_a_leaked_one_still_ends_it() -> None:
    # The caller is being cancelled (shutting down) while the client's stop leaks its own.
    async def caller_body() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # requested; delivered at the next await
        await quietly(cancel_of_its_own())

    caller = asyncio.create_task(caller_body())
    with pytest.raises(asyncio.CancelledError):
        await caller
