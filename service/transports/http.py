"""HTTP for Herald's plain ASGI routes: the request as an ASGI scope holds it, its body, and
answers with the headers, problems and metrics every Herald answer gets.

A request is read the way werkzeug reads one for Quart's routes (first header wins,
latin-1, query and cookies parsed by werkzeug), so both kinds of route see the same client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

from werkzeug.http import parse_cookie
from werkzeug.sansio.utils import get_host

from .. import request_log
from ..asgi import Receive, Scope, Send
from ..browser_security import browser_headers
from ..cache_policy import NEVER
from ..config import Settings
from ..errors import HeraldError, RequestTimeout, TooLarge
from ..metrics import Metrics
from ..problems import PROBLEM_JSON, problem_of
from .identity import Gate

JSON = "application/json"
Headers = list[tuple[str, str]]


class RequestHeaders:
    """Request headers by case-insensitive name (ASGI gives names in lower case)."""

    __slots__ = ("_values",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        values: dict[str, str] = {}
        for name, value in raw:
            values.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        self._values = values

    def get(self, key: str) -> str | None:
        return self._values.get(key.lower())


class Request:
    """The request of an ASGI ``http`` or ``websocket`` scope."""

    __slots__ = ("_args", "headers", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.headers = RequestHeaders(scope["headers"])
        self._args: dict[str, str] | None = None

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    @property
    def args(self) -> Mapping[str, str]:
        """The query: the first value of each name."""
        if self._args is None:
            query = self.scope.get("query_string", b"").decode("utf-8", "replace")
            args: dict[str, str] = {}
            for name, value in parse_qsl(query, keep_blank_values=True):
                args.setdefault(name, value)
            self._args = args
        return self._args

    @property
    def cookies(self) -> Mapping[str, str]:
        return parse_cookie(self.headers.get("Cookie") or "")

    @property
    def scheme(self) -> str:
        return str(self.scope.get("scheme", "http"))

    @property
    def host(self) -> str:
        return get_host(self.scheme, self.headers.get("Host"), self.scope.get("server"))

    @property
    def remote_addr(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    @property
    def mimetype(self) -> str:
        """The media type of the body, in lower case, without parameters."""
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    @property
    def content_length(self) -> int | None:
        """The declared body size, if any and well-formed."""
        declared = self.headers.get("Content-Length")
        if declared is None or not (declared.isascii() and declared.isdigit()):
            return None
        return int(declared)


class ClientLeft(Exception):
    """The client disconnected: there is no one to answer."""


class Body:
    """A request body, taken from the server's ``receive``."""

    __slots__ = ("_open", "_receive", "_taken")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        # Whether more may come: not once it ended, the client left or the time ran out.
        self._open = True
        self._taken = 0  # bytes received so far

    @property
    def complete(self) -> bool:
        """Whether the whole body was taken (or the client left): nothing unread is left."""
        return not self._open

    async def read(self, limit: int, timeout_s: float) -> bytes:
        """All of it: at most ``limit`` bytes (else 413), within ``timeout_s`` (a body that
        trickles in is a 408)."""
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(timeout_s):
                while (chunk := await self._next()) is not None:
                    if self._taken > limit:
                        raise too_large(limit)
                    chunks.append(chunk)
        except TimeoutError:
            self._open = False
            raise RequestTimeout("the body did not arrive in time") from None
        return b"".join(chunks)

    async def discard(self, limit: int, timeout_s: float, declared: int | None) -> None:
        """Take and drop what is left, up to ``limit`` bytes within ``timeout_s``.

        A client refused before its body was all in is likely still sending it; a server that
        answers and then closes with unread bytes resets the connection, answer and all. A
        body declared longer than ``limit`` is not asked for at all (a client waiting for
        ``100 Continue`` would only start sending it); ``complete`` then says the connection
        must close. Raises ClientLeft if the client left meanwhile.
        """
        if not self._open or (declared is not None and declared - self._taken > limit):
            return
        start = self._taken
        try:
            async with asyncio.timeout(timeout_s):
                while self._taken - start <= limit and await self._next() is not None:
                    pass
        except TimeoutError:
            pass

    async def wait_for_disconnect(self) -> None:
        """After the body: wait until the client leaves (a held request ends with it)."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._open = False
                return

    async def _next(self) -> bytes | None:
        """The next chunk; None once the body ended."""
        if not self._open:
            return None
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self._open = False
            raise ClientLeft
        if not message.get("more_body", False):
            self._open = False
        chunk: bytes = message.get("body", b"")
        self._taken += len(chunk)
        return chunk


def too_large(limit: int) -> TooLarge:
    return TooLarge(f"the body may hold at most {limit} bytes")


class Answers:
    """How Herald's ASGI routes answer: every answer carries the browser headers, a
    Cache-Control (``no-store`` unless the route says otherwise) and the request id, and is
    counted per route."""

    def __init__(self, gate: Gate, settings: Settings, metrics: Metrics) -> None:
        self._gate = gate
        self._settings = settings
        self._metrics = metrics

    def headers(
        self, request: Request, headers: Iterable[tuple[str, str]], media_type: str
    ) -> list[tuple[bytes, bytes]]:
        """The raw headers of an answer with ``headers`` and a body of ``media_type``."""
        named = [("Content-Type", media_type), *headers]
        if not any(name.lower() == "cache-control" for name, _ in named):
            # A cache keeps an answer without Cache-Control for its own default time.
            named.append(("Cache-Control", NEVER))
        named += browser_headers(
            self._gate.origins,
            self._settings,
            request.headers.get("Origin"),
            self._gate.scheme(request),
        )
        request_id = request_log.request_id()
        if request_id is not None:
            named.append(("X-Request-Id", request_id))
        return [(name.lower().encode(), value.encode("latin-1")) for name, value in named]

    async def send(
        self,
        send: Send,
        request: Request,
        route: str,
        status: int,
        body: bytes,
        headers: Iterable[tuple[str, str]] = (),
        media_type: str = JSON,
    ) -> None:
        """A whole answer."""
        raw = self.headers(request, headers, media_type)
        raw.append((b"content-length", str(len(body)).encode()))
        request_log.answered(status)
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self._metrics.answered(route, status)

    async def problem(
        self,
        send: Send,
        request: Request,
        route: str,
        error: HeraldError,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """The problem document of ``error``."""
        status, body, problem_headers = problem_of(error)
        await self.send(
            send, request, route, status, body, [*problem_headers, *headers], PROBLEM_JSON
        )

    def counted(self, route: str, status: int) -> None:
        """Count an answer sent some other way (a stream's start)."""
        self._metrics.answered(route, status)
        request_log.answered(status)
