"""GET /v1/topics/{topic}/stream: Server-Sent Events, resumable through Last-Event-ID.

A plain ASGI route: the route's own task writes the stream; a second one waits for the
client to leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from functools import partial

from .. import request_log, tasks
from ..asgi import Receive, Scope, Send
from ..auth import Principal, expiry_timer
from ..collector import COLLECTOR
from ..errors import HeraldError
from ..outbox import Outbox
from ..pulse import Pulse
from ..reads import Opened
from ..request_log import ConnectionLog
from ..subscription import Subscription
from ..wire import Format, dump_json, lag_frame, run_sse_chunks, sse_frame
from .catch_up import cancel, start_catch_up
from .h3 import QuicWindow, drained
from .http import Body, Request
from .params import key_param, mode_param
from .streaming import StreamParts

log = logging.getLogger(__name__)

ROUTE = "stream"
HEARTBEAT = b": ping\r\n\r\n"
MEDIA_TYPE = "text/event-stream; charset=utf-8"
# Never cached, never buffered by a proxy (nginx reads X-Accel-Buffering).
_HEADERS = [("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")]


@dataclass(frozen=True, slots=True)
class SseRoute:
    """Opens a subscription and streams it until the client leaves or must reconnect."""

    parts: StreamParts

    async def __call__(self, scope: Scope, receive: Receive, send: Send, topic: str) -> None:
        parts = self.parts
        request = Request(scope)
        outbox = Outbox(
            Format.SSE,
            parts.settings.subscriber_queue_size,
            parts.metrics.latency["sse"],
            parts.metrics.superseded,
        )
        address = parts.gate.address(request)
        acquired = False
        try:
            key = key_param(request.args)
            # A reconnecting EventSource sends the last id it saw; it wins over the URL's.
            since = request.headers.get("Last-Event-ID") or request.args.get("since") or None
            latest = mode_param(request.args)
            principal = parts.gate.principal(request)
            parts.streams.acquire(address)
            acquired = True
            opened = await parts.reads.open(outbox, topic, key, since, principal, address, latest)
        except HeraldError as exc:
            if acquired:
                parts.streams.release(address)
            await parts.answers.problem(send, request, ROUTE, exc)
            return
        try:
            await self._stream(request, receive, send, outbox, opened, principal, address)
        finally:
            parts.reads.close(opened.subscription)
            parts.streams.release(address)

    async def _stream(
        self,
        request: Request,
        receive: Receive,
        send: Send,
        outbox: Outbox,
        opened: Opened,
        principal: Principal | None,
        address: str,
    ) -> None:
        parts = self.parts
        settings, metrics = parts.settings, parts.metrics
        subscription = opened.subscription
        failed: list[HeraldError] = []
        left: list[bool] = []
        cut: list[bool] = []

        def on_catch_up_error(exc: HeraldError) -> None:
            failed.append(exc)
            outbox.put_control(sse_frame(event="error", data=dump_json(exc.problem())))

        def on_left(_watcher: object) -> None:
            left.append(True)
            outbox.wake()

        handler = asyncio.current_task()
        # Over HTTP/3 a write is done once the client acknowledged it (see h3.py).
        window = send if isinstance(send, QuicWindow) else None
        expired: list[bool] = []

        def on_expiry() -> None:
            expired.append(True)
            outbox.wake()

        def on_stuck() -> None:
            # The client stopped reading (or reads too slowly to matter): its connection
            # goes, and with it what the server buffers for it. It resumes with Last-Event-ID.
            log.info("SSE client took over %ss to take a chunk: closing", settings.send_timeout_s)
            metrics.lagging.inc()
            cut.append(True)
            if outbox.direct is not None:
                outbox.direct.abort()
            elif handler is not None:
                handler.cancel()

        preamble = sse_frame(retry=settings.sse_retry_ms)
        if opened.reset_to is not None:
            body = {"topic": subscription.topic, "key": subscription.key, "cursor": opened.reset_to}
            preamble += sse_frame(event="reset", id=opened.reset_to, data=dump_json(body))
        headers = parts.answers.headers(request, _HEADERS, MEDIA_TYPE)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        parts.answers.counted(ROUTE, 200)
        watcher = asyncio.create_task(Body(receive).wait_for_disconnect())
        watcher.add_done_callback(on_left)
        parts.streams.add(outbox, partial(lag_frame, Format.SSE))
        metrics.connections.labels("sse").inc()
        metrics.subscriptions.labels("sse").inc()
        deliveries = metrics.deliveries.labels("sse")
        catch_up = start_catch_up(opened, on_catch_up_error)
        pulse = Pulse(
            outbox, HEARTBEAT, settings.sse_heartbeat_s, settings.send_timeout_s, on_stuck
        )
        pulse.start()
        expiry = expiry_timer(principal, settings.jwt_leeway_s, on_expiry)
        monotonic = time.monotonic
        lines = ConnectionLog("sse", address, 1)
        reason = request_log.ERROR  # (a catch-up read that failed, or anything unforeseen)
        try:
            await _body(send, preamble)
            # The headers are out: from here an idle stream takes events from the fan-out.
            if parts.fast is not None:
                outbox.direct = parts.fast.sse_socket(
                    send, run_sse_chunks, metrics.direct_deliveries["sse"]
                )
            while True:
                if not (outbox.ready or left or expired):
                    await outbox.wait()
                if left:
                    reason = request_log.CLIENT_LEFT
                    return
                if expired:
                    # Its token no longer holds: the client reconnects with a fresh one.
                    reason = request_log.TOKEN_EXPIRED
                    await _body(send, _goodbye("token-expired", subscription))
                    break
                frames = outbox.drain()
                if frames:
                    # Everything pending goes out as one body chunk: one write, many events.
                    if outbox.drained_events:
                        deliveries.inc(outbox.drained_events)
                    # Until the chunk is written, later events queue behind it; it has
                    # HERALD_SEND_TIMEOUT_S to go.
                    pulse.writing(monotonic())
                    await _body(send, b"".join(f for f in frames if isinstance(f, bytes)))
                    if window is not None and not await drained(window):
                        left.append(True)
                        continue
                    outbox.writing_since = 0.0
                    outbox.written()
                if cut or failed:
                    break  # EventSource reconnects by itself with Last-Event-ID
                if outbox.overflowed:
                    metrics.lagging.inc()
                    reason = request_log.LAGGING
                    await _body(send, _goodbye("lagging", subscription))
                    break
                if outbox.closed:
                    reason = request_log.SHUTDOWN
                    await _body(send, _goodbye("shutdown", subscription))
                    break
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not tasks.own_cancel(bool(cut)):
                reason = request_log.SHUTDOWN
                raise  # the server stops this stream: not ours to swallow
        finally:
            if cut:
                reason = request_log.STUCK
                if window is not None:
                    await window.abort()  # what the stream still holds goes with it
            elif left and reason == request_log.ERROR:
                reason = request_log.CLIENT_LEFT  # gone in the middle of a write
            lines.closed(reason, 1, outbox.delivered)
            COLLECTOR.connection_closed()
            outbox.direct = None
            pulse.stop()
            if expiry is not None:
                expiry.cancel()
            watcher.remove_done_callback(on_left)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await cancel(catch_up)
            parts.streams.discard(outbox)
            metrics.connections.labels("sse").dec()
            metrics.subscriptions.labels("sse").dec()


async def _body(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})


def _goodbye(reason: str, subscription: Subscription) -> bytes:
    """The last frame: why the stream ends and the cursor to reconnect with."""
    body = {"topic": subscription.topic, "key": subscription.key, "cursor": subscription.cursor}
    return sse_frame(event=reason, id=subscription.cursor, data=dump_json(body))
