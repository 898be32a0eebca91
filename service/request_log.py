"""What a request leaves in the log: its id, the lines of a streaming connection, the access log.

Every request (a WebSocket and an SSE stream included) gets an id when the router takes it:
the client's ``X-Request-Id`` when that is a sane value, else the trace id of its W3C
``traceparent``, else a new one. Every answer echoes it back, and every line logged while the
request is handled carries it (logs.RequestIds reads it here).

A WebSocket or an SSE stream logs one line when it opens and one when it closes
(``herald.connection``); with ``HERALD_ACCESS_LOG`` every answered request logs one line
(``herald.access``). These loggers log one line per thing by design: never held back as
repeats, never one line per event.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote

from .asgi import Scope

CONNECTIONS = logging.getLogger("herald.connection")
ACCESS = logging.getLogger("herald.access")
# Loggers that write one line per connection or request, each of which counts.
EVERY_LINE = frozenset({CONNECTIONS.name, ACCESS.name})

# An id a client (or the proxy in front) gave: short and plain, so it can neither bloat nor
# forge a line.
_GIVEN_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
# version-traceid-parentid-flags; later versions may append fields.
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}(?:-|$)")
_NO_TRACE = b"0" * 32

# Why a streaming connection closed: the whole vocabulary (docs/operations.md, "Logs").
CLIENT_LEFT = "client-left"  # the client closed it or went away
LAGGING = "lagging"  # its queue overflowed: closed with its last cursor
STUCK = "stuck"  # a write took longer than HERALD_SEND_TIMEOUT_S: dropped
TOKEN_EXPIRED = "token-expired"  # its token expired: told to reconnect with a new one
SHUTDOWN = "shutdown"  # the instance is stopping: told to reconnect elsewhere
POLICY = "policy"  # it broke the protocol or a limit (WebSocket close code 4xxx, 1009)
ERROR = "error"  # something failed on Herald's side (a catch-up read, a bug)
REASONS = (CLIENT_LEFT, LAGGING, STUCK, TOKEN_EXPIRED, SHUTDOWN, POLICY, ERROR)

_TRANSPORT_NAMES = {"ws": "WebSocket", "sse": "SSE stream"}


class Exchange:
    """One request while it is handled: its id, when it began, what it was answered."""

    __slots__ = ("request_id", "started", "status")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.started = time.monotonic()
        self.status: int | None = None


_current: ContextVar[Exchange | None] = ContextVar("herald_request", default=None)


def begin(scope: Scope) -> Exchange:
    """The request of ``scope`` starts: it is the current one of the task handling it (and of
    the tasks that task starts)."""
    exchange = Exchange(request_id_of(scope["headers"]))
    _current.set(exchange)
    return exchange


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The id of a request with these (ASGI, lower-case) headers."""
    given = traceparent = None
    for name, value in headers:
        if name == b"x-request-id":
            given = value if given is None else given
        elif name == b"traceparent":
            traceparent = value if traceparent is None else traceparent
    if given is not None and _GIVEN_ID.fullmatch(given):
        return given.decode()
    if traceparent is not None:
        match = _TRACEPARENT.match(traceparent.strip())
        if match and match[1] != b"ff" and match[2] != _NO_TRACE:
            return match[2].decode()
    return os.urandom(8).hex()


def request_id() -> str | None:
    """The id of the request being handled; None outside of one (the fan-out, Kafka's)."""
    exchange = _current.get()
    return None if exchange is None else exchange.request_id


def id_header() -> list[tuple[bytes, bytes]]:
    """The request id as a raw ``X-Request-Id`` answer header (none outside of a request)."""
    exchange = _current.get()
    return [] if exchange is None else [(b"x-request-id", exchange.request_id.encode())]


def answered(status: int) -> None:
    """The request being handled is answered with ``status`` (for the access log)."""
    exchange = _current.get()
    if exchange is not None:
        exchange.status = status


class ConnectionLog:
    """The two lines of one WebSocket or SSE stream: when it opens and when it closes."""

    __slots__ = ("_client", "_started", "_transport")

    def __init__(self, transport: str, client: str, topics: int) -> None:
        self._transport = transport
        self._client = client
        self._started = time.monotonic()
        if CONNECTIONS.isEnabledFor(logging.INFO):
            CONNECTIONS.info(
                "%s opened from %s (%s)",
                _TRANSPORT_NAMES[transport],
                client,
                _counted(topics, "topic"),
                extra=_fields(connection="open", transport=transport, client=client, topics=topics),
            )

    def closed(self, reason: str, topics: int, events: int, code: int | None = None) -> None:
        """It closed for ``reason`` (one of REASONS) holding ``topics`` subscriptions, after
        ``events`` events reached it; ``code``: the WebSocket close code Herald sent."""
        if not CONNECTIONS.isEnabledFor(logging.INFO):
            return
        duration = round(time.monotonic() - self._started, 3)
        fields: dict[str, Any] = {
            "connection": "close",
            "transport": self._transport,
            "client": self._client,
            "topics": topics,
            "duration_s": duration,
            "events": events,
            "reason": reason,
        }
        if code is not None:
            fields["code"] = code
        CONNECTIONS.info(
            "%s closed (%s) after %.3f s, from %s (%s, %s)",
            _TRANSPORT_NAMES[self._transport],
            reason if code is None else f"{reason}, {code}",
            duration,
            self._client,
            _counted(topics, "topic"),
            _counted(events, "event"),
            extra={"fields": fields},
        )


def _fields(**fields: Any) -> dict[str, Any]:
    return {"fields": fields}


def _counted(count: int, thing: str) -> str:
    return f"{count} {thing}" if count == 1 else f"{count} {thing}s"


# Query parameters whose values the access log shows: those Herald reads (a cursor, a key).
# Any other value (``access_token`` above all, or a secret put where it does not belong) is
# left out, and so is any other name that is not short and plain.
_SHOWN = frozenset({"topic", "key", "since", "after", "limit", "wait", "mode"})
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.%-]{1,32}")
_HIDDEN = "***"
# Longest target logged: a request line may be kilobytes long.
_TARGET_CHARS = 1000


def target(scope: Scope) -> str:
    """The path and query of ``scope`` as the access log shows them: only values of
    parameters Herald reads; every other value is ``***``."""
    path = str(scope.get("path", ""))
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        path = f"{path}?{'&'.join(_shown(pair) for pair in query.split('&'))}"
    return path[:_TARGET_CHARS]


def _shown(pair: str) -> str:
    name = pair.partition("=")[0]
    if unquote(name) in _SHOWN:
        return pair
    return f"{name}={_HIDDEN}" if _PLAIN_NAME.fullmatch(name) else _HIDDEN


# The client address of a request, as the identity gate tells it (trusted proxies).
AddressOf = Callable[[Scope], str]


class AccessLog:
    """One line per answered request, written when its handling ends (a stream's at its
    close): method, path and query (see ``target``), status, duration, client address."""

    __slots__ = ("_address",)

    def __init__(self, address: AddressOf) -> None:
        self._address = address

    async def logged(self, scope: Scope, exchange: Exchange, handling: Awaitable[None]) -> None:
        """Await ``handling`` (the route's coroutine), then log its line."""
        try:
            await handling
        except Exception:
            if exchange.status is None:
                exchange.status = 500  # what the server answers for an app that failed
            raise
        finally:
            self._line(scope, exchange)

    def _line(self, scope: Scope, exchange: Exchange) -> None:
        if not ACCESS.isEnabledFor(logging.INFO):
            return
        duration = round(time.monotonic() - exchange.started, 3)
        method = "WEBSOCKET" if scope["type"] == "websocket" else str(scope.get("method"))
        shown = target(scope)
        client = self._address(scope)
        status = exchange.status
        ACCESS.info(
            '%s "%s %s" %s %.3f s',
            client,
            method,
            shown,
            "-" if status is None else status,
            duration,
            extra=_fields(
                method=method, path=shown, status=status, duration_s=duration, client=client
            ),
        )
