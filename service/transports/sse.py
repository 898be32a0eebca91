"""GET /v1/topics/{topic}/stream: Server-Sent Events, resumable through Last-Event-ID."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable

from quart import Blueprint, Response, request

from ..errors import HeraldError
from ..outbox import Outbox, Pulse, Subscription
from ..state import Herald, Opened, herald
from ..wire import Format, dump_json, run_sse_chunks, sse_frame
from .asgi import serve_http
from .catch_up import cancel, start_catch_up
from .direct import Send, SocketWrite, asgi_send, sse_socket
from .identity import client_address, principal_of
from .params import key_param

log = logging.getLogger(__name__)
blueprint = Blueprint("sse", __name__)
# Requests are served by transports/asgi.py: an open stream keeps neither its request
# object nor a handler task of Quart's.
blueprint.record_once(serve_http)

HEARTBEAT = b": ping\r\n\r\n"


@blueprint.get("/v1/topics/<topic>/stream")
async def stream(topic: str) -> Response:
    h = herald()
    key = key_param(request.args)
    # A reconnecting EventSource sends the last id it saw; it wins over the first-connect URL.
    since = request.headers.get("Last-Event-ID") or request.args.get("since") or None
    principal = principal_of(h, request)
    address = client_address(h, request)
    outbox = Outbox(Format.SSE, h.settings.subscriber_queue_size)
    h.connections.acquire(address)
    # Released when the stream ends, or when the outbox is collected: a body that is never
    # iterated (the client left first) never runs its own finally.
    release = weakref.finalize(outbox, h.connections.release, address)
    try:
        opened = await h.open(outbox, topic, key, since, principal)
    except BaseException:
        release()
        raise
    preamble = sse_frame(retry=h.settings.sse_retry_ms)
    if opened.reset_to is not None:
        preamble += sse_frame(
            event="reset",
            id=opened.reset_to,
            data=dump_json({"topic": topic, "key": key, "cursor": opened.reset_to}),
        )
    response = Response(
        _events(h, outbox, opened, preamble, release, asgi_send(request.scope)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
    # Quart would otherwise cut every stream after RESPONSE_TIMEOUT (60 s).
    response.timeout = None
    return response


async def _events(
    h: Herald,
    outbox: Outbox,
    opened: Opened,
    preamble: bytes,
    release: Callable[[], object],
    send: Send | None,
) -> AsyncIterator[bytes]:
    subscription = opened.subscription
    failed: list[HeraldError] = []

    def on_catch_up_error(exc: HeraldError) -> None:
        failed.append(exc)
        outbox.put_control(sse_frame(event="error", data=dump_json(exc.problem())))

    h.outboxes.add(outbox)
    h.metrics.connections.labels("sse").inc()
    deliveries = h.metrics.deliveries.labels("sse")
    catch_up = start_catch_up(opened, on_catch_up_error)
    handler = asyncio.current_task()
    cut: list[bool] = []

    def on_stuck() -> None:
        # The client stopped reading (or reads too slowly to matter): its connection goes,
        # and with it what the server buffers for it. It resumes with Last-Event-ID.
        log.info("SSE client took over %ss to take a chunk: closing", h.settings.send_timeout_s)
        h.metrics.lagging.inc()
        cut.append(True)
        if isinstance(outbox.direct, SocketWrite):
            outbox.direct.abort()
        elif handler is not None:
            handler.cancel()

    pulse = Pulse(
        outbox, HEARTBEAT, h.settings.sse_heartbeat_s, h.settings.send_timeout_s, on_stuck
    )
    pulse.start()
    monotonic = time.monotonic
    try:
        yield preamble
        # The headers are out: from here an idle stream takes events from the fan-out.
        outbox.direct = sse_socket(send, run_sse_chunks, h.metrics.direct_deliveries["sse"])
        while True:
            if not outbox.ready:
                await outbox.wait()
            frames = outbox.drain()
            if frames:
                # Everything pending goes out as one body chunk: one write, many events.
                if outbox.drained_events:
                    deliveries.inc(outbox.drained_events)
                # Until the chunk is written, later events queue behind it; it has
                # HERALD_SEND_TIMEOUT_S to go.
                pulse.writing(monotonic())
                yield b"".join(frame for frame in frames if isinstance(frame, bytes))
                outbox.writing_since = 0.0
            if cut:
                return
            if failed:
                return  # EventSource reconnects by itself with Last-Event-ID
            if outbox.overflowed:
                h.metrics.lagging.inc()
                yield _goodbye("lagging", subscription)
                return
            if outbox.closed:
                yield _goodbye("shutdown", subscription)
                return
    finally:
        outbox.direct = None
        pulse.stop()
        await cancel(catch_up)
        h.close(subscription)
        release()
        h.outboxes.discard(outbox)
        h.metrics.connections.labels("sse").dec()


def _goodbye(reason: str, subscription: Subscription) -> bytes:
    """The last frame: why the stream ends and the cursor to reconnect with."""
    body = {"topic": subscription.topic, "key": subscription.key, "cursor": subscription.cursor}
    return sse_frame(event=reason, id=subscription.cursor, data=dump_json(body))
