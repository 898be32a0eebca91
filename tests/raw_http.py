"""HTTP/1.1 spoken by hand, for requests no client library will send (cut short, lying)."""

from __future__ import annotations

import asyncio


async def answer_head(port: int, request: bytes, timeout_s: float = 30) -> bytes:
    """Send ``request`` as it is to 127.0.0.1:``port``; the head of whatever comes back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout_s):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
