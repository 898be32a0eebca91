"""Owning background tasks: every task a part starts, it stops and awaits on shutdown."""

from __future__ import annotations

import asyncio
import contextlib


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any and still running) and wait until it has finished."""
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def own_cancel(ours: bool) -> bool:
    """In an ``except CancelledError``: whether the cancel was this task's own doing
    (``ours``: it cancelled itself) and nothing else cancelled it too."""
    task = asyncio.current_task()
    return ours and task is not None and task.uncancel() == 0
