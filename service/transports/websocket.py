"""GET /v1/ws: one WebSocket, many subscriptions, publishing too; JSON or msgpack frames.

A plain ASGI route. The connection's writer (the route's own task) is the only sender:
control messages and events share its outbox, so a ``subscribed`` always precedes the events
of that subscription. A reader task takes the client's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import request_log, tasks
from ..asgi import Receive, Scope, Send
from ..auth import Principal, expiry_timer
from ..collector import COLLECTOR
from ..errors import Forbidden, HeraldError, Malformed, RateLimited, TooManySubscriptions
from ..ingest import Ingest
from ..limits import TokenBucket
from ..outbox import Outbox
from ..problems import PROBLEM_JSON, problem_of
from ..pulse import Pulse
from ..reads import Opened
from ..request_log import ConnectionLog
from ..subscription import Subscription
from ..wire import (
    Format,
    batches,
    decode_message,
    encode_message,
    groups,
    lag_frame,
    run_ws_batches,
    run_ws_frames,
    ws_frame,
)
from .catch_up import cancel, start_catch_up
from .fast_path import WriteBytes
from .http import Request
from .streaming import StreamParts
from .ws_protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_IDLE,
    CLOSE_LAGGING,
    CLOSE_MALFORMED,
    CLOSE_RATE_LIMITED,
    CLOSE_TOKEN_EXPIRED,
    CLOSE_TOO_BIG,
    CLOSE_WRONG_FRAME,
    HEARTBEATS,
    SUBPROTOCOLS,
    Ping,
    ProtocolViolation,
    Publish,
    Subscribe,
    Unsubscribe,
    negotiate,
    parse_op,
    subscribe_op,
)

log = logging.getLogger(__name__)

ROUTE = "ws"
# How long a closed connection's remaining messages are still read off (see _linger).
_LINGER_S = 1.0
SendFrame = Callable[[bytes | str], Awaitable[None]]
# Frames written to the socket at once, at most about this many bytes (the send deadline
# applies to each such write).
WRITE_BYTES = 64 * 1024


# Why Herald closed a connection, by the close code it sent (any other: request_log.POLICY).
_CLOSE_REASONS = {
    CLOSE_LAGGING: request_log.LAGGING,
    CLOSE_TOKEN_EXPIRED: request_log.TOKEN_EXPIRED,
    CLOSE_GOING_AWAY: request_log.SHUTDOWN,
}


class Disconnected(Exception):
    """The client is gone: there is nothing more to read."""


@dataclass(frozen=True, slots=True)
class WebSocketRoute:
    """Accepts WebSockets (or refuses them with an HTTP answer) and runs each connection."""

    parts: StreamParts
    ingest: Ingest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return  # the client left before the handshake
        request = Request(scope)
        subprotocol = negotiate(list(scope.get("subprotocols") or []))
        if subprotocol is None:
            message = f"offer one of {', '.join(SUBPROTOCOLS)}".encode()
            await self._refuse(send, scope, request, 400, message, "text/plain")
            return
        fmt, batch = SUBPROTOCOLS[subprotocol] if subprotocol else (Format.JSON, False)
        # Refused before the upgrade: a page of another site must not ride on a visitor's
        # cookies (cross-site WebSocket hijacking), and limits hold before any work is done.
        gate, streams = self.parts.gate, self.parts.streams
        address = gate.address(request)
        try:
            if not gate.origin_allowed(request):
                raise Forbidden("WebSocket from a page of another origin")
            principal = gate.principal(request)
            streams.acquire(address)
        except HeraldError as exc:
            await self._refuse_problem(send, scope, request, exc)
            return
        try:
            request_log.answered(101 if scope.get("http_version") == "1.1" else 200)
            headers = request_log.id_header()
            await send(
                {"type": "websocket.accept", "subprotocol": subprotocol or None, "headers": headers}
            )
            connection = Connection(self, request, receive, send, fmt, principal, address, batch)
            await connection.run()
        finally:
            streams.release(address)

    async def _refuse_problem(
        self, send: Send, scope: Scope, request: Request, error: HeraldError
    ) -> None:
        status, body, headers = problem_of(error)
        await self._refuse(send, scope, request, status, body, PROBLEM_JSON, headers)

    async def _refuse(
        self,
        send: Send,
        scope: Scope,
        request: Request,
        status: int,
        body: bytes,
        media_type: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """An HTTP answer instead of the upgrade, where the server can send one (the ASGI
        ``websocket.http.response`` extension); else a plain refusal (403)."""
        answers = self.parts.answers
        answers.counted(ROUTE, status)
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": 1008})
            return
        raw = answers.headers(request, headers or [], media_type)
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


class Connection:
    """The state of one WebSocket: its outbox and its subscriptions by (topic, key)."""

    # Thousands are held open at once, most of them idle: no per-instance dict.
    __slots__ = (
        "address",
        "args",
        "batch",
        "catch_ups",
        "close_code",
        "disconnected",
        "ended",
        "expired",
        "fmt",
        "ingest",
        "lines",
        "message_rate",
        "ops",
        "outbox",
        "parts",
        "principal",
        "pulse",
        "receive",
        "send",
        "stuck",
        "subscriptions",
        "traceparent",
        "worker",
        "writer",
    )

    def __init__(
        self,
        route: WebSocketRoute,
        request: Request,
        receive: Receive,
        send: Send,
        fmt: Format,
        principal: Principal | None,
        address: str,
        batch: bool = False,
    ) -> None:
        self.parts = route.parts
        self.ingest = route.ingest
        self.args = request.args
        # A publish over this connection continues the trace of its upgrade request.
        self.traceparent = request.headers.get("traceparent")
        self.receive = receive
        self.send = send
        self.fmt = fmt
        self.batch = batch
        self.principal = principal
        self.address = address
        settings = self.parts.settings
        # Inbound messages wait in the server's queue: a flood is cut off here.
        self.message_rate = TokenBucket(settings.ws_message_rate_per_s, settings.ws_message_burst)
        metrics = self.parts.metrics
        self.outbox = Outbox(
            fmt, settings.subscriber_queue_size, metrics.latency["ws"], metrics.superseded
        )
        self.subscriptions: dict[tuple[str, str | None], Subscription] = {}
        self.catch_ups: dict[tuple[str, str | None], asyncio.Task[None]] = {}
        self.ended = False
        self.expired = False
        self.stuck = False
        self.disconnected = False
        # The close code Herald sent, if it closed the connection (for its close line).
        self.close_code: int | None = None
        # Ops waiting for the worker, and the worker while there are any (both made on
        # first use: most connections subscribe once and then only listen).
        self.ops: deque[Subscribe | Unsubscribe | Publish | Ping] | None = None
        self.worker: asyncio.Task[None] | None = None
        self.pulse: Pulse | None = None
        self.writer: asyncio.Task[Any] | None = None

    async def run(self) -> None:
        """Write in this task until the connection ends; read in a task of its own."""
        parts = self.parts
        settings = parts.settings
        parts.streams.add(self.outbox, partial(lag_frame, self.fmt))
        parts.metrics.connections.labels("ws").inc()
        self.lines = ConnectionLog("ws", self.address, 1 if self.args.get("topic") else 0)
        # Installed before the reader starts: its subscribes hold direct writes (holding).
        if parts.fast is not None:
            self.outbox.direct = parts.fast.ws_socket(
                self.send,
                self.fmt,
                run_ws_batches if self.batch else run_ws_frames,
                parts.metrics.direct_deliveries["ws"],
            )
        reader = asyncio.create_task(self._read())
        reader.add_done_callback(self._stop_writing)
        # A timer, not a task: the writer closes (as the only sender) when it fires.
        expiry = expiry_timer(self.principal, settings.jwt_leeway_s, self._expire)
        self.writer = asyncio.current_task()
        pulse = self.pulse = Pulse(
            self.outbox,
            HEARTBEATS[self.fmt],
            settings.ws_heartbeat_s,
            settings.send_timeout_s,
            self._stuck,
        )
        pulse.start()
        cancelled = False
        try:
            await self._write()
        except asyncio.CancelledError:
            if not tasks.own_cancel(self.stuck):
                cancelled = True
                raise
        finally:
            self.lines.closed(
                self._close_reason(cancelled),
                len(self.subscriptions),
                self.outbox.delivered,
                self.close_code,
            )
            COLLECTOR.connection_closed()
            self.outbox.direct = None
            pulse.stop()
            if expiry is not None:
                expiry.cancel()
            reader.remove_done_callback(self._stop_writing)
            for task in (reader, self.worker):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            await self._linger()
            for task in self.catch_ups.values():
                await cancel(task)
            for subscription in self.subscriptions.values():
                parts.reads.close(subscription)
            parts.metrics.subscriptions.labels("ws").dec(len(self.subscriptions))
            parts.streams.discard(self.outbox)
            parts.metrics.connections.labels("ws").dec()

    def _close_reason(self, cancelled: bool) -> str:
        """Why the connection ended, in request_log's words."""
        if self.stuck:
            return request_log.STUCK
        if cancelled:
            return request_log.SHUTDOWN  # the server cuts what is left when it stops
        if self.close_code is not None:
            return _CLOSE_REASONS.get(self.close_code, request_log.POLICY)
        if self.disconnected:
            return request_log.CLIENT_LEFT
        return request_log.ERROR  # the reader failed

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
        self._subscribe_from_url()
        while await self._read_one():
            pass

    def _subscribe_from_url(self) -> None:
        args = self.args
        if not args.get("topic"):
            return
        try:
            names = ("topic", "key", "since", "mode")
            op = subscribe_op({name: args.get(name) or None for name in names})
        except ProtocolViolation as exc:
            # The URL is no frame: its problems are reported, the connection stays.
            self._send({"op": "error", "code": "malformed", "message": exc.reason})
            return
        self._enqueue(op)

    async def _next_frame(self) -> bytes | str:
        """The client's next message; Disconnected once it left."""
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                if text is not None:
                    return str(text)
                data = message.get("bytes")
                return bytes(data) if data is not None else b""
            if kind == "websocket.disconnect":
                self.disconnected = True
                raise Disconnected

    async def _read_one(self) -> bool:
        """Take the next message; False once the connection ends (closed, or the client left).

        The reader never waits for anything but the client: what takes Kafka (subscribing,
        publishing) is queued for the connection's worker, so the server's own queue of
        inbound messages never fills. A call per message: nothing of the last one stays
        referenced while the reader waits.
        """
        settings = self.parts.settings
        try:
            if self.subscriptions or self.ops:
                frame = await self._next_frame()
            else:
                # A connection that follows nothing and says nothing is only holding a socket.
                async with asyncio.timeout(settings.ws_idle_timeout_s):
                    frame = await self._next_frame()
        except TimeoutError:
            await self._close(CLOSE_IDLE, "idle: no subscription and no message")
            return False
        except Disconnected:
            return False
        if len(frame) > settings.max_body_bytes:
            await self._close(CLOSE_TOO_BIG, "message too big")
            return False
        try:
            self.message_rate.take()
        except RateLimited:
            await self._close(CLOSE_RATE_LIMITED, "too many messages")
            return False
        try:
            op = parse_op(decode_message(frame, self.fmt))
            if (
                isinstance(op, Ping)
                and not self.ops
                and (self.worker is None or self.worker.done())
            ):
                self._send({"op": "pong"})  # nothing ahead of it: answered at once
            else:
                # Answers come in the order of the ops: a ping after a subscribe is answered
                # after the subscribe's own answer.
                self._enqueue(op)
        except Malformed as exc:
            wrong_type = isinstance(frame, str) != (self.fmt is Format.JSON)
            await self._close(CLOSE_WRONG_FRAME if wrong_type else CLOSE_MALFORMED, exc.detail)
            return False
        except ProtocolViolation as exc:
            await self._close(exc.code, exc.reason)
            return False
        return True

    def _enqueue(self, op: Subscribe | Unsubscribe | Publish | Ping) -> None:
        """Queue ``op`` for the worker (started when there is work, gone when there is none)."""
        if self.ops is None:
            self.ops = deque()
        if len(self.ops) >= self.parts.settings.ws_message_burst:
            raise ProtocolViolation(CLOSE_RATE_LIMITED, "too many operations waiting")
        self.ops.append(op)
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._work())

    async def _work(self) -> None:
        """Carry out queued ops in order; return once none is left."""
        ops = self.ops
        while ops:
            op = ops.popleft()
            if isinstance(op, Subscribe):
                await self._subscribe(op)
            elif isinstance(op, Unsubscribe):
                await self._drop((op.topic, op.key))
            elif isinstance(op, Publish):
                await self._publish(op)
            else:
                self._send({"op": "pong"})

    async def _linger(self) -> None:
        """After a close: take what the client still sends until it leaves, for a while, so
        the server's inbound queue (bounded) never fills behind a connection that is done."""
        if self.disconnected:
            return
        with contextlib.suppress(Disconnected, TimeoutError):
            async with asyncio.timeout(_LINGER_S):
                while True:
                    await self._next_frame()

    async def _subscribe(self, op: Subscribe) -> None:
        topic, key = op.topic, op.key
        limit = self.parts.settings.max_subscriptions
        try:
            if (topic, key) not in self.subscriptions and len(self.subscriptions) >= limit:
                raise TooManySubscriptions(f"at most {limit} subscriptions per connection")
            with self.outbox.holding():
                opened = await self._open(topic, key, op.since, op.latest)
        except HeraldError as exc:
            self._error(exc, None, topic=topic, key=key)
            return

        def on_catch_up_error(exc: HeraldError) -> None:
            # The subscription stops; the client subscribes again from its last cursor.
            if self.subscriptions.pop((topic, key), None) is not None:
                self.parts.metrics.subscriptions.labels("ws").dec()
            self.catch_ups.pop((topic, key), None)
            self._error(exc, None, topic=topic, key=key)

        task = start_catch_up(opened, on_catch_up_error)
        if task is not None:
            self.catch_ups[(topic, key)] = task

    async def _open(self, topic: str, key: str | None, since: str | None, latest: bool) -> Opened:
        """Subscribe, replacing any subscription to the same (topic, key), and queue the
        ``subscribed`` (and ``reset``) ahead of the subscription's first events."""
        opened = await self.parts.reads.open(
            self.outbox, topic, key, since, self.principal, self.address, latest
        )
        await self._drop((topic, key))
        self.subscriptions[(topic, key)] = opened.subscription
        self.parts.metrics.subscriptions.labels("ws").inc()
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
            self.parts.reads.close(subscription)
            self.parts.metrics.subscriptions.labels("ws").dec()

    async def _publish(self, op: Publish) -> None:
        ref = op.ref
        # A string ref doubles as the publish's idempotency key (this client's own): a client
        # that resends after a reconnect (to any instance) gets the original id, no second event.
        idempotency_key = ref if isinstance(ref, str) and ref.isprintable() and ref else None
        ingest = self.ingest
        try:
            ingest.knock(self.principal, self.address)
            event = ingest.validator.one(op.event)
            ingest.admit(self.principal, self.address, op.topic, [event.key])
            published, _replayed = await ingest.publish(
                op.topic,
                [event],
                self.principal,
                self.address,
                idempotency_key,
                transport="ws",
                traceparent=self.traceparent,
            )
        except HeraldError as exc:
            self._error(exc, ref)
            return
        self._send({"op": "ack", "ref": ref, "id": published[0].as_dict()["id"]})

    # -- outbound --------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        self.outbox.put_control(encode_message(message, self.fmt))

    def _error(self, exc: HeraldError, ref: Any, **context: Any) -> None:
        self._send({"op": "error", "code": exc.code, "message": exc.detail, "ref": ref, **context})

    def _stuck(self) -> None:
        settings = self.parts.settings
        log.info("WebSocket client took over %ss to take a frame: closing", settings.send_timeout_s)
        self.parts.metrics.lagging.inc()
        self.stuck = True
        socket = self.outbox.direct
        if socket is not None:
            socket.abort()  # a close would wait for the buffered bytes to drain first
        assert self.writer is not None
        self.writer.cancel()

    async def _write(self) -> None:
        """The only sender: everything waiting goes out per wake-up, in order (see _flush)."""
        outbox = self.outbox
        metrics = self.parts.metrics
        deliveries = metrics.deliveries.labels("ws")
        fast = self.parts.fast
        write = fast.ws_writer(self.send) if fast is not None else None
        # Made only when needed: thousands of idle connections hold their writer's locals.
        send = _sender(self.send, self.fmt) if write is None else None
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
            outbox.written()
            if outbox.drained_events:
                deliveries.inc(outbox.drained_events)
            if outbox.overflowed:
                metrics.lagging.inc()
                goodbye = send or _sender(self.send, self.fmt)
                for subscription in self.subscriptions.values():
                    await goodbye(
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

        On the fast path the frames go onto the connection's stream as bytes: each event's
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
        if self.close_code is None:
            self.close_code = code
        # A close reason is at most 123 bytes.
        text = reason.encode()[:120].decode(errors="ignore")
        await self.send({"type": "websocket.close", "code": code, "reason": text})


def _joined(frames: list[bytes]) -> list[bytes]:
    """``frames`` joined into writes of about WRITE_BYTES."""
    if len(frames) <= 1:
        return frames
    return [b"".join(group) for group in groups(frames, WRITE_BYTES)]


def _sender(send: Send, fmt: Format) -> SendFrame:
    """Write one frame as an ASGI ``websocket.send``."""
    key = "bytes" if fmt is Format.MSGPACK else "text"

    def send_frame(frame: bytes | str) -> Awaitable[None]:
        return send({"type": "websocket.send", key: frame})

    return send_frame
