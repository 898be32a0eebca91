"""GET /v1/ws: one WebSocket, many subscriptions, publishing too; JSON or msgpack frames.

The connection's writer task is the only sender: control messages and events share its
outbox, so a ``subscribed`` always precedes the events of that subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, websocket

from ..auth import Principal
from ..errors import Forbidden, HeraldError, Malformed, RateLimited, TooManySubscriptions
from ..idempotency import MAX_KEY_CHARS
from ..limits import TokenBucket
from ..outbox import Outbox, Pulse, Subscription
from ..problems import problem_response
from ..state import Herald, Opened, herald
from ..wire import (
    Format,
    batches,
    decode_message,
    encode_message,
    groups,
    run_ws_batches,
    run_ws_frames,
    ws_frame,
)
from .asgi import Disconnected, serve_websockets
from .catch_up import cancel, start_catch_up
from .direct import Send, SocketWrite, asgi_send, ws_socket, ws_stream_writer
from .identity import client_address, origin_allowed, principal_of

log = logging.getLogger(__name__)
blueprint = Blueprint("websocket", __name__)
blueprint.record_once(serve_websockets)

# Each subprotocol: its frames' format, and whether the client takes ``batch`` messages.
SUBPROTOCOLS = {
    "herald.v1.json": (Format.JSON, False),
    "herald.v1.msgpack": (Format.MSGPACK, False),
    "herald.v1.batch.json": (Format.JSON, True),
    "herald.v1.batch.msgpack": (Format.MSGPACK, True),
}
WriteBytes = Callable[[bytes], Awaitable[None]]
SendFrame = Callable[[bytes | str], Awaitable[None]]
# Frames written to the socket at once, at most about this many bytes (the send deadline
# applies to each such write).
WRITE_BYTES = 64 * 1024

# Close codes (documented in the README and openapi.yaml).
CLOSE_MALFORMED = 4400
CLOSE_WRONG_FRAME = 4415
CLOSE_LAGGING = 4409
CLOSE_GOING_AWAY = 4503
CLOSE_TOO_BIG = 1009
CLOSE_TOKEN_EXPIRED = 4401
CLOSE_IDLE = 4408
CLOSE_RATE_LIMITED = 4429
_MAX_REF_CHARS = MAX_KEY_CHARS
# The same bytes for every connection of a format.
_HEARTBEATS = {
    fmt: encode_message({"op": "heartbeat"}, fmt) for fmt in (Format.JSON, Format.MSGPACK)
}


class ProtocolViolation(Exception):
    """The client broke the protocol: the connection closes with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@blueprint.websocket("/v1/ws")
async def ws() -> Response | None:
    h = herald()
    subprotocol = _negotiate(websocket.requested_subprotocols)
    if subprotocol is None:
        return Response(f"offer one of {', '.join(SUBPROTOCOLS)}", status=400)
    fmt, batch = SUBPROTOCOLS[subprotocol] if subprotocol else (Format.JSON, False)
    # Refused before the upgrade: a page of another site must not ride on a visitor's
    # cookies (cross-site WebSocket hijacking), and limits hold before any work is done.
    if not origin_allowed(h, websocket):
        return problem_response(Forbidden("WebSocket from a page of another origin"))
    address = client_address(h, websocket)
    try:
        principal = principal_of(h, websocket)
        h.connections.acquire(address)
    except HeraldError as exc:
        return problem_response(exc)
    try:
        await websocket.accept(subprotocol=subprotocol or None)
        await Connection(h, fmt, principal, batch).run()
    finally:
        h.connections.release(address)
    return None


def _negotiate(requested: list[str]) -> str | None:
    """The first subprotocol the client offers that Herald speaks; "" when it offers none."""
    if not requested:
        return ""
    return next((name for name in requested if name in SUBPROTOCOLS), None)


class Connection:
    """The state of one WebSocket: its outbox and its subscriptions by (topic, key)."""

    # Thousands are held open at once, most of them idle: no per-instance dict.
    __slots__ = (
        "address",
        "batch",
        "catch_ups",
        "ended",
        "expired",
        "fmt",
        "h",
        "message_rate",
        "outbox",
        "principal",
        "pulse",
        "subscriptions",
        "writer",
    )

    def __init__(
        self, h: Herald, fmt: Format, principal: Principal | None, batch: bool = False
    ) -> None:
        self.h = h
        self.fmt = fmt
        self.batch = batch
        self.principal = principal
        self.address = client_address(h, websocket)
        # Inbound messages wait in the server's queue without bound: a flood is cut off here.
        self.message_rate = TokenBucket(
            h.settings.ws_message_rate_per_s, h.settings.ws_message_burst
        )
        self.outbox = Outbox(fmt, h.settings.subscriber_queue_size)
        self.subscriptions: dict[tuple[str, str | None], Subscription] = {}
        self.catch_ups: dict[tuple[str, str | None], asyncio.Task[None]] = {}
        self.ended = False
        self.expired = False
        self.pulse: Pulse | None = None
        self.writer: asyncio.Task[Any] | None = None

    async def run(self) -> None:
        """Write in this task until the connection ends; read in a task of its own."""
        h = self.h
        h.outboxes.add(self.outbox)
        h.metrics.connections.labels("ws").inc()
        # Installed before the reader starts: its subscribes hold direct writes (holding).
        self.outbox.direct = ws_socket(
            asgi_send(websocket.scope),
            self.fmt,
            run_ws_batches if self.batch else run_ws_frames,
            h.metrics.direct_deliveries["ws"],
        )
        reader = asyncio.create_task(self._read())
        reader.add_done_callback(self._stop_writing)
        expiry = None
        if self.principal is not None and self.principal.expires_at is not None:
            # A timer, not a task: the writer closes (as the only sender) when it fires.
            left = self.principal.expires_at + h.settings.jwt_leeway_s - time.time()
            expiry = asyncio.get_running_loop().call_later(max(0.0, left), self._expire)
        self.writer = asyncio.current_task()
        pulse = self.pulse = Pulse(
            self.outbox,
            _HEARTBEATS[self.fmt],
            h.settings.ws_heartbeat_s,
            h.settings.send_timeout_s,
            self._stuck,
        )
        pulse.start()
        try:
            await self._write()
        finally:
            self.outbox.direct = None
            pulse.stop()
            if expiry is not None:
                expiry.cancel()
            reader.remove_done_callback(self._stop_writing)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            for task in self.catch_ups.values():
                await cancel(task)
            for subscription in self.subscriptions.values():
                h.close(subscription)
            h.outboxes.discard(self.outbox)
            h.metrics.connections.labels("ws").dec()

    def _stop_writing(self, _task: object) -> None:
        # The reader ended the connection (or the client left): the writer returns.
        self.ended = True
        self.outbox.wake()

    def _expire(self) -> None:
        # The token expired: the writer closes, and the client reconnects with a fresh one.
        self.expired = True
        self.outbox.wake()

    # -- inbound ---------------------------------------------------------------------------

    async def _read(self) -> None:
        await self._subscribe_from_url()
        while await self._read_one():
            pass

    async def _subscribe_from_url(self) -> None:
        args = websocket.args
        if args.get("topic"):
            try:
                await self._subscribe(
                    {
                        "op": "subscribe",
                        "topic": args["topic"],
                        "key": args.get("key") or None,
                        "since": args.get("since") or None,
                    }
                )
            except ProtocolViolation as exc:
                # The URL is no frame: its problems are reported, the connection stays.
                self._send({"op": "error", "code": "malformed", "message": exc.reason})

    async def _read_one(self) -> bool:
        """Take the next message; False once the connection ends (closed, or the client left).

        A call per message: nothing of the last one stays referenced while the reader waits.
        """
        try:
            if self.subscriptions:
                frame = await websocket.receive()
            else:
                # A connection that follows nothing and says nothing is only holding a socket.
                idle = self.h.settings.ws_idle_timeout_s
                frame = await asyncio.wait_for(websocket.receive(), idle)
        except TimeoutError:
            await self._close(CLOSE_IDLE, "idle: no subscription and no message")
            return False
        except Disconnected:
            return False
        if frame is None:
            # Quart hands over an empty binary message as None (an empty text one as "").
            frame = b""
        if len(frame) > self.h.settings.max_body_bytes:
            await self._close(CLOSE_TOO_BIG, "message too big")
            return False
        try:
            self.message_rate.take()
        except RateLimited:
            await self._close(CLOSE_RATE_LIMITED, "too many messages")
            return False
        try:
            message = decode_message(frame, self.fmt)
            await self._handle(message)
        except Malformed as exc:
            wrong_type = isinstance(frame, str) != (self.fmt is Format.JSON)
            await self._close(CLOSE_WRONG_FRAME if wrong_type else CLOSE_MALFORMED, exc.detail)
            return False
        except ProtocolViolation as exc:
            await self._close(exc.code, exc.reason)
            return False
        return True

    async def _handle(self, message: Any) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            raise ProtocolViolation(CLOSE_MALFORMED, "a message is an object with an op")
        op = message["op"]
        if op == "subscribe":
            await self._subscribe(message)
        elif op == "unsubscribe":
            topic, key = _text(message, "topic", True), _text(message, "key", False)
            assert topic is not None
            await self._drop((topic, key))
        elif op == "publish":
            await self._publish(message)
        elif op == "ping":
            self._send({"op": "pong"})
        else:
            raise ProtocolViolation(CLOSE_MALFORMED, f"unknown op {op[:40]!r}")

    async def _subscribe(self, message: dict[str, Any]) -> None:
        topic = _text(message, "topic", True)
        key = _text(message, "key", False)
        since = _text(message, "since", False)
        assert topic is not None
        try:
            if (topic, key) not in self.subscriptions and len(
                self.subscriptions
            ) >= self.h.settings.max_subscriptions:
                raise TooManySubscriptions(
                    f"at most {self.h.settings.max_subscriptions} subscriptions per connection"
                )
            with self.outbox.holding():
                opened = await self._open(topic, key, since)
        except HeraldError as exc:
            self._error(exc, None, topic=topic, key=key)
            return

        def on_catch_up_error(exc: HeraldError) -> None:
            # The subscription stops; the client subscribes again from its last cursor.
            self.subscriptions.pop((topic, key), None)
            self.catch_ups.pop((topic, key), None)
            self._error(exc, None, topic=topic, key=key)

        task = start_catch_up(opened, on_catch_up_error)
        if task is not None:
            self.catch_ups[(topic, key)] = task

    async def _open(self, topic: str, key: str | None, since: str | None) -> Opened:
        """Subscribe, replacing any subscription to the same (topic, key), and queue the
        ``subscribed`` (and ``reset``) ahead of the subscription's first events."""
        opened = await self.h.open(self.outbox, topic, key, since, self.principal)
        await self._drop((topic, key))
        self.subscriptions[(topic, key)] = opened.subscription
        cursor = opened.reset_to or opened.subscription.cursor
        controls = [
            {
                "op": "subscribed",
                "topic": topic,
                "key": key,
                "cursor": cursor,
                "recovered": opened.recovered,
            },
        ]
        if opened.reset_to is not None:
            controls.append({"op": "reset", "topic": topic, "key": key, "cursor": cursor})
        # Replayed events are already queued: these must reach the client before them.
        self.outbox.put_control_first(
            [encode_message(control, self.fmt) for control in controls], opened.subscription
        )
        return opened

    async def _drop(self, name: tuple[str, str | None]) -> None:
        await cancel(self.catch_ups.pop(name, None))
        subscription = self.subscriptions.pop(name, None)
        if subscription is not None:
            self.h.close(subscription)

    async def _publish(self, message: dict[str, Any]) -> None:
        ref = message.get("ref")
        if ref is not None and (
            isinstance(ref, bool)
            or not (isinstance(ref, int) or (isinstance(ref, str) and len(ref) <= _MAX_REF_CHARS))
        ):
            raise ProtocolViolation(CLOSE_MALFORMED, "ref is a string or an integer")
        topic = _text(message, "topic", True)
        assert topic is not None
        event_fields = {name: message[name] for name in ("type", "key", "data") if name in message}
        # A string ref doubles as the publish's idempotency key: a client that resends after
        # a reconnect (to any instance) gets the original id and no second event.
        idempotency_key = ref if isinstance(ref, str) and ref.isprintable() and ref else None
        try:
            event = self.h.validator.one(event_fields)
            self.h.admit_publish(self.principal, self.address, topic, [event])
            published, replayed = await self.h.ingest.publish(topic, [event], idempotency_key)
        except HeraldError as exc:
            self._error(exc, ref)
            return
        if not replayed:
            self.h.metrics.published.inc()
        self._send({"op": "ack", "ref": ref, "id": published[0].as_dict()["id"]})

    # -- outbound --------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        self.outbox.put_control(encode_message(message, self.fmt))

    def _error(self, exc: HeraldError, ref: Any, **context: Any) -> None:
        self._send({"op": "error", "code": exc.code, "message": exc.detail, "ref": ref, **context})

    def _stuck(self) -> None:
        log.info(
            "WebSocket client took over %ss to take a frame: closing",
            self.h.settings.send_timeout_s,
        )
        self.h.metrics.lagging.inc()
        socket = self.outbox.direct
        if isinstance(socket, SocketWrite):
            socket.abort()  # a close would wait for the buffered bytes to drain first
        assert self.writer is not None
        self.writer.cancel()

    async def _write(self) -> None:
        """The only sender: everything waiting goes out per wake-up, in order (see _flush)."""
        outbox = self.outbox
        deliveries = self.h.metrics.deliveries.labels("ws")
        send_asgi = asgi_send(websocket.scope)
        write = ws_stream_writer(send_asgi)
        # Made only when needed: thousands of idle connections hold their writer's locals.
        send = _sender(send_asgi, self.fmt) if write is None else None
        while True:
            # (A flag set during the last write found no wait to wake.)
            if not (outbox.ready or self.ended or self.expired):
                await outbox.wait()
            if self.ended:
                return
            if self.expired:
                await self._close(CLOSE_TOKEN_EXPIRED, "token expired: reconnect with a new one")
                return
            # A call per wake-up: no frame stays referenced while the writer waits.
            await self._flush(write, send)
            outbox.writing_since = 0.0
            if outbox.drained_events:
                deliveries.inc(outbox.drained_events)
            if outbox.overflowed:
                self.h.metrics.lagging.inc()
                for subscription in self.subscriptions.values():
                    await websocket.send(
                        encode_message(
                            {
                                "op": "lagging",
                                "topic": subscription.topic,
                                "key": subscription.key,
                                "cursor": subscription.cursor,
                            },
                            self.fmt,
                        )
                    )
                await self._close(CLOSE_LAGGING, "lagging: resume from your last cursor")
                return
            if outbox.closed:
                await self._close(CLOSE_GOING_AWAY, "server shutting down: reconnect and resume")
                return

    async def _flush(self, write: WriteBytes | None, send: SendFrame | None) -> None:
        """Write what waits in the outbox.

        Under Hypercorn the frames go onto the connection's stream as bytes: each event's
        frame is built once and shared by every connection, and what waits is one write.
        A batch client gets what waits as ``batch`` messages.
        """
        outbox, batch, fmt = self.outbox, self.batch, self.fmt
        monotonic = time.monotonic
        assert self.pulse is not None
        writing = self.pulse.writing
        if write is not None:
            if batch and outbox.pending > 1:
                frames = [ws_frame(m) for m in batches(outbox.drain(), fmt)]
            else:
                frames = outbox.drain_ws_frames()
            for data in _joined(frames):
                # The deadline (Pulse) is per write: a long backlog is fine while the
                # client reads.
                writing(monotonic())
                await write(data)
        else:
            messages = outbox.drain()
            if batch and len(messages) > 1:
                messages = batches(messages, fmt)
            assert send is not None
            for message in messages:
                writing(monotonic())
                await send(message)

    async def _close(self, code: int, reason: str) -> None:
        self.outbox.direct = None  # nothing may follow the close frame
        # A close reason is at most 123 bytes.
        await websocket.close(code, reason.encode()[:120].decode(errors="ignore"))


def _joined(frames: list[bytes]) -> list[bytes]:
    """``frames`` joined into writes of about WRITE_BYTES."""
    if len(frames) <= 1:
        return frames
    return [b"".join(group) for group in groups(frames, WRITE_BYTES)]


def _sender(asgi_send: Send | None, fmt: Format) -> SendFrame:
    """Write one frame: straight to the server's ASGI send when the scope has it."""
    if asgi_send is None:
        return websocket.send  # served without the blueprint's ASGI wrapper
    key = "bytes" if fmt is Format.MSGPACK else "text"

    def send(frame: bytes | str) -> Awaitable[None]:
        return asgi_send({"type": "websocket.send", key: frame})

    return send


def _text(message: dict[str, Any], name: str, required: bool) -> str | None:
    value = message.get(name)
    if value is None:
        if required:
            raise ProtocolViolation(CLOSE_MALFORMED, f"{name} is required")
        return None
    # isprintable also refuses lone surrogates, which no wire format can carry back.
    if not isinstance(value, str) or not value or len(value) > 1024 or not value.isprintable():
        raise ProtocolViolation(CLOSE_MALFORMED, f"{name} must be a non-empty printable string")
    return value
