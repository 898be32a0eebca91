"""How Quart serves each connection, made lean for the thousands that are held open idle.

Quart runs every request and every WebSocket in two tasks of its own besides the server's
(one for the handler, one copying inbound messages), and an HTTP request keeps its request
object (two asyncio.Events among it) for as long as its response streams. Idle, that is
most of what an SSE stream or a WebSocket costs Herald beyond the server's own share.

Here the handler runs in the server's task. A WebSocket's ``receive()`` takes the next
message straight from the server's queue (Herald's connection reads in a task of its own);
an HTTP request keeps one task that takes its body and then waits for the disconnect, which
ends the handler as Quart's does. Once a response is made, its request is let go.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from flask.sansio.blueprints import BlueprintSetupState
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    WebsocketScope,
)
from quart import Quart, Request, Response
from quart.asgi import ASGIHTTPConnection, ASGIWebsocketConnection, _handle_exception
from quart.signals import websocket_received
from quart.wrappers import Body


class Disconnected(Exception):
    """The WebSocket client is gone: ``websocket.receive()`` has nothing more to give."""


class HTTPConnection(ASGIHTTPConnection):
    """Quart's HTTP connection with the handler in the server's task."""

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        request = self._create_request_from_scope(send)
        handler = asyncio.current_task()
        assert handler is not None
        receiver = asyncio.ensure_future(_take_body(request.body, receive))
        handled = left = False

        def client_left(_receiver: object) -> None:
            nonlocal left
            if not handled:
                left = True
                handler.cancel()  # the handler stops, as under Quart

        receiver.add_done_callback(client_left)
        handling = self.handle_request(request, send)
        del request  # held by the handler only, which lets it go once it has a response
        try:
            await handling
        except asyncio.CancelledError:
            if not left or handler.uncancel() > 0:
                raise  # not (only) ours: the server's task is being cancelled
            failed = None if receiver.cancelled() else receiver.exception()
            if failed is not None:
                raise failed from None
        finally:
            handled = True
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)

    async def handle_request(self, request: Request, send: ASGISendCallable) -> None:
        # Quart 0.22's handle_request, letting go of the request before the response
        # streams: an SSE stream outlives it by hours.
        try:
            response = await self.app.handle_request(request)
        except Exception as error:  # noqa: BLE001 - Quart's own handling: a 500, or re-raised
            response = await _handle_exception(self.app, error)
        del request
        timeout: float | None
        if isinstance(response, Response) and response.timeout != Ellipsis:
            timeout = cast(float | None, response.timeout)
        else:
            timeout = self.app.config["RESPONSE_TIMEOUT"]
        if timeout is None:
            await self._send_response(send, response)  # (wait_for's frame would stay too)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._send_response(send, response), timeout=timeout)


async def _take_body(body: Body, receive: ASGIReceiveCallable) -> None:
    """Fill ``body``, then wait for the client to disconnect (what Quart's receiver does)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if message["type"] == "http.request":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                body.set_complete()
                break
    del body  # the request may go now
    while (await receive())["type"] != "http.disconnect":
        pass


class WebsocketConnection(ASGIWebsocketConnection):
    """Quart's WebSocket connection with the handler in the server's task and no queue."""

    def __init__(self, app: Quart, scope: WebsocketScope) -> None:
        super().__init__(app, scope)
        self.queue = _Inbound()  # type: ignore[assignment]  # in place of Quart's own queue

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        cast(_Inbound, self.queue).receive = receive
        await self.handle_websocket(self._create_websocket_from_scope(send), send)


class _Inbound:
    """What Quart's Websocket takes its messages from: the server's queue itself."""

    __slots__ = ("disconnected", "receive")

    def __init__(self) -> None:
        self.receive: ASGIReceiveCallable | None = None
        self.disconnected = False

    async def get(self) -> Any:
        """The next message as Quart gives it (str, bytes; an empty binary one is None)."""
        assert self.receive is not None
        while not self.disconnected:
            event = await self.receive()
            if event["type"] == "websocket.receive":
                message = event.get("bytes") or event["text"]
                await websocket_received.send_async(message)
                return message
            if event["type"] == "websocket.disconnect":
                self.disconnected = True
        raise Disconnected


def serve_http(state: BlueprintSetupState) -> None:
    """Serve the app's HTTP requests through HTTPConnection (a blueprint's record_once)."""
    cast(Quart, state.app).asgi_http_class = HTTPConnection


def serve_websockets(state: BlueprintSetupState) -> None:
    """Serve the app's WebSockets through WebsocketConnection (a blueprint's record_once)."""
    cast(Quart, state.app).asgi_websocket_class = WebsocketConnection
