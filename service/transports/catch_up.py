"""Running a subscription's catch-up read in a task its connection owns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .. import tasks
from ..errors import HeraldError
from ..reads import Opened


def start_catch_up(
    opened: Opened, on_error: Callable[[HeraldError], None]
) -> asyncio.Task[None] | None:
    """Start reading the gap from Kafka, if there is one; Kafka trouble goes to ``on_error``."""
    if opened.catch_up is None:
        return None
    reading = opened.catch_up

    async def run() -> None:
        try:
            await reading
        except HeraldError as exc:
            on_error(exc)

    return asyncio.create_task(run(), name=f"catch-up {opened.subscription.topic}")


# What a connection does with its catch-up task when it closes or unsubscribes.
cancel = tasks.stop
