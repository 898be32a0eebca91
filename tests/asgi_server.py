"""A small ASGI app of a test served by Hypercorn on a loopback port, in this process."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework

App = Callable[[Any, Any, Any], Awaitable[None]]


@asynccontextmanager
async def serve_asgi(app: App) -> AsyncIterator[str]:
    """``app`` on a loopback socket that listens before serving starts; its base URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    config = Config()
    # Hypercorn takes the socket over (and closes it when it stops).
    config.bind = [f"fd://{listener.detach()}"]
    config.accesslog = None

    async def with_lifespan(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await app(scope, receive, send)

    stop = asyncio.Event()
    framework = cast(ASGIFramework, with_lifespan)
    serving = asyncio.create_task(serve(framework, config, shutdown_trigger=stop.wait))
    try:
        yield f"http://{address}"
    finally:
        stop.set()
        await serving
