"""Waiting for a state that announces itself with no event (another process, a flag)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

_POLL_S = 0.01


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Return once ``condition()`` holds; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(_POLL_S)
