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
