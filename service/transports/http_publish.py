"""POST /v1/topics/{topic}/events: validate, write to Kafka, answer once acknowledged.

Served on ASGI directly, ahead of Quart (``serve_publish``): a publish is the request that
backends send many times a second, and Quart's machinery around a request (its contexts,
hooks and signals, a werkzeug request and response, a task watching for the client to
leave) was half of the server time of one. What a request gets from passing through Quart,
this gives its answers itself: the same problem documents, browser headers, Cache-Control
and request metrics (under the endpoint name Quart gave the route).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from quart import Quart
from werkzeug.exceptions import HTTPException, InternalServerError, RequestTimeout

from ..browser_security import browser_headers
from ..cache_policy import NEVER
from ..errors import BadParameter, HeraldError, KafkaUnavailable, TooLarge, UnsupportedMediaType
from ..events import MSGPACK
from ..idempotency import MAX_KEY_CHARS
from ..problems import PROBLEM_JSON, problem_of
from ..state import Herald
from ..wire import parse_json, parse_msgpack
from .identity import client_address, principal_of
from .scope import ScopeRequest

log = logging.getLogger(__name__)

# Quart's ``string`` converter: one path segment (the server has decoded %XX already).
_PATH = re.compile(r"/v1/topics/([^/]+)/events")
ENDPOINT = "publish.publish"
_JSON = "application/json"


# An ASGI server's callables, as far as this route uses them.
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _ClientLeft(Exception):
    """The client disconnected before its body was in: there is no one to answer."""


def serve_publish(app: Quart, h: Herald) -> None:
    """Answer POSTs to the publish URL here; everything else goes on to Quart."""
    inner = app.asgi_app

    # Hands back the coroutine that serves the request (see direct.keep_asgi_send).
    def asgi_app(scope: Any, receive: Any, send: Any) -> Coroutine[Any, Any, None]:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _PATH.fullmatch(scope["path"])
            if match is not None:
                return _answer(h, match.group(1), scope, receive, send)
        return inner(scope, receive, send)

    app.asgi_app = asgi_app  # type: ignore[method-assign]


async def _answer(
    h: Herald, topic: str, scope: dict[str, Any], receive: Receive, send: Send
) -> None:
    incoming = ScopeRequest(scope)
    body = _Body(receive)
    try:
        answer, headers = await _publish(h, topic, incoming, body)
        status, media_type = 201, _JSON
    except _ClientLeft:
        return
    except (HeraldError, HTTPException) as error:
        status, answer, headers = problem_of(error)
        media_type = PROBLEM_JSON
    except Exception:
        # What Quart does with an error no handler took: log it, answer a plain 500.
        log.exception("Exception on request POST %s", scope["path"])
        status, answer, headers = problem_of(InternalServerError())
        media_type = PROBLEM_JSON
    # A client refused before its body was all in is likely still sending it. The server
    # closes a connection whose request was not read to its end once the answer is out, and
    # a close with unread bytes resets it, answer and all: the rest is read off first.
    # (Up to twice the largest body a publish may have: enough for one a little too large.)
    allowance = 2 * h.settings.max_body_bytes
    if not await body.discard(allowance, h.settings.body_timeout_s, incoming.content_length):
        return
    origin = incoming.headers.get("Origin")
    headers += browser_headers(h.origins, h.settings, origin, incoming.scheme)
    raw_headers = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(answer)).encode()),
        *((name.lower().encode(), value.encode("latin-1")) for name, value in headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": answer, "more_body": False})
    h.metrics.answered(ENDPOINT, status)


async def _publish(
    h: Herald, topic: str, incoming: ScopeRequest, body: _Body
) -> tuple[bytes, list[tuple[str, str]]]:
    """The body and headers of the 201 answer; raises what the client gets a problem for."""
    principal = principal_of(h, incoming)
    media_type = incoming.mimetype
    if media_type not in (_JSON, MSGPACK):
        raise UnsupportedMediaType("send application/json or application/msgpack")
    limit = h.settings.max_body_bytes
    length = incoming.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    raw = await body.read(limit, h.settings.body_timeout_s)
    idempotency_key = incoming.headers.get("Idempotency-Key")
    if idempotency_key is not None and not _valid_key(idempotency_key):
        raise BadParameter(f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable characters")
    data = parse_msgpack(raw) if media_type == MSGPACK else parse_json(raw)
    events = h.validator.batch(data)
    h.admit_publish(principal, client_address(h, incoming), topic, events)
    try:
        published, replayed = await h.ingest.publish(topic, events, idempotency_key)
    except KafkaUnavailable:
        h.metrics.publish_failures.inc()
        raise
    if not replayed:
        h.metrics.published.inc(len(published))
    answer = {"events": [item.as_dict() for item in published]}
    headers = [("Idempotent-Replayed", "true")] if replayed else []
    return json.dumps(answer).encode(), [*headers, ("Cache-Control", NEVER)]


class _Body:
    """The request body, from the server's ``receive``."""

    __slots__ = ("_open", "_receive", "_taken")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        # Whether more may come: not once it ended, the client left or the time ran out.
        self._open = True
        self._taken = 0  # bytes received so far

    async def read(self, limit: int, timeout_s: float) -> bytes:
        """All of it: at most ``limit`` bytes (else 413), within ``timeout_s`` (a body that
        trickles in is a 408)."""
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(timeout_s):
                while (chunk := await self._next()) is not None:
                    if self._taken > limit:
                        raise _too_large(limit)
                    chunks.append(chunk)
        except TimeoutError:
            self._open = False
            raise RequestTimeout() from None
        return b"".join(chunks)

    async def discard(self, limit: int, timeout_s: float, declared: int | None) -> bool:
        """Take and drop what is left, up to ``limit`` bytes within ``timeout_s``; False if
        the client left meanwhile. A body declared longer than that is not asked for at all
        (a client waiting for ``100 Continue`` would only start sending it)."""
        if not self._open or (declared is not None and declared - self._taken > limit):
            return True
        start = self._taken
        try:
            async with asyncio.timeout(timeout_s):
                while self._taken - start <= limit and await self._next() is not None:
                    pass
        except TimeoutError:
            pass
        except _ClientLeft:
            return False
        return True

    async def _next(self) -> bytes | None:
        """The next chunk; None once the body ended."""
        if not self._open:
            return None
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self._open = False
            raise _ClientLeft
        if not message.get("more_body", False):
            self._open = False
        chunk: bytes = message.get("body", b"")
        self._taken += len(chunk)
        return chunk


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"the body may hold at most {limit} bytes")


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_CHARS and key.isprintable()
