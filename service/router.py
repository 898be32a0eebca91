"""The front door: Herald's streaming and publish routes as plain ASGI, the rest to Quart.

WebSockets, Server-Sent Events, history pages with their long-polls, and publishing are
served by Herald's own ASGI routes on the server's public interface; every other request
(snapshots, health, metrics, the demo page, lifespan) goes on to a stock Quart app.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from . import request_log
from .asgi import App, Receive, Scope, Send
from .browser_security import Origins, preflight
from .errors import MethodNotAllowed
from .request_log import AccessLog
from .transports.h3 import Wrap, over_h3
from .transports.http import Answers, Request

# A route's handler: the ASGI call, with the path's named parts as keyword arguments.
Handler = Callable[..., Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    """A path (a regular expression, matched in full) and its handler per method.

    WebSocket routes name the method ``WEBSOCKET``.
    """

    path: str
    methods: Mapping[str, Handler]
    name: str
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(self.path))


class Router:
    """Sends each connection to its route, or to ``fallback`` (Quart) when no route has it.

    Each request gets its id here (request_log), and with an ``access_log`` its line. With
    ``h3`` (HERALD_QUIC_BIND) an HTTP/3 response's ``send`` is wrapped (transports/h3.py).
    """

    def __init__(
        self,
        routes: list[Route],
        fallback: App,
        origins: Origins,
        answers: Answers,
        access_log: AccessLog | None = None,
        h3: Wrap | None = None,
    ) -> None:
        self._routes = routes
        self._fallback = fallback
        self._origins = origins
        self._answers = answers
        self._access_log = access_log
        self._h3 = h3

    # Not a coroutine itself: it hands back the route's, so no frame of its own stays on the
    # stack of every open connection (thousands of them, mostly idle), unless the access log
    # must wait for the end.
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            return self._fallback(scope, receive, send)
        if self._h3 is not None and over_h3(scope):
            if kind == "websocket":
                # WebSocket stays on HTTP/1.1 and HTTP/2: no browser offers it over HTTP/3
                # (RFC 9220), and its fast path and limits are TCP's.
                return _refuse_websocket(send)
            send = self._h3(send) or send
        exchange = request_log.begin(scope)
        handling = self._route(scope, receive, send)
        if self._access_log is None:
            return handling
        return self._access_log.logged(scope, exchange, handling)

    def _route(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        kind = scope["type"]
        path = scope["path"]
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            method = "WEBSOCKET" if kind == "websocket" else scope["method"]
            handler = route.methods.get(method)
            if handler is not None:
                return handler(scope, receive, send, **match.groupdict())
            if kind == "http":
                return self._other_method(scope, send, route)
        return self._fallback(scope, receive, send)

    async def _other_method(self, scope: Scope, send: Send, route: Route) -> None:
        request = Request(scope)
        if request.method == "OPTIONS":
            status, headers = preflight(self._origins, request.headers.get("Origin"))
            await self._answers.send(send, request, route.name, status, b"", headers, "text/plain")
            return
        allowed = ", ".join(sorted(route.methods))
        error = MethodNotAllowed(f"{request.method[:20]} is not allowed here; use {allowed}")
        await self._answers.problem(send, request, route.name, error, [("Allow", allowed)])


async def _refuse_websocket(send: Send) -> None:
    """A 403 as an answer of its own: Hypercorn's for a closed handshake names a connection
    header, which HTTP/3 forbids (the client would drop the whole connection)."""
    body = b"WebSocket is served over HTTP/1.1 and HTTP/2, not HTTP/3"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
