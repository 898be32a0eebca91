"""GET /v1/topics/{topic}/events: a page of history after a cursor, or a long-poll for one.

A plain ASGI route: a long-poll is held open (like a stream) until an event arrives, its wait
ends or the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from .. import cache_policy
from ..asgi import Receive, Scope, Send
from ..auth import Principal
from ..broadcaster import Broadcaster
from ..errors import HeraldError, TokenExpired
from ..events import Scope as IdScope
from ..outbox import Outbox
from ..resume import EARLIEST, Page
from ..wire import Format, dump_json
from .http import Body, Request
from .params import int_param, key_param, known_params, mode_param
from .streaming import StreamParts

ROUTE = "history"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_PARAMS = frozenset({"key", "after", "limit", "wait", "mode"})


@dataclass(frozen=True, slots=True)
class HistoryRoute:
    """Answers history pages and long-polls (held like a stream while they wait)."""

    parts: StreamParts

    async def __call__(self, scope: Scope, receive: Receive, send: Send, topic: str) -> None:
        request = Request(scope)
        answers = self.parts.answers
        try:
            answered = await self._page(request, receive, topic)
        except HeraldError as exc:
            await answers.problem(send, request, ROUTE, exc)
            return
        finally:
            self.parts.reads.done(topic)
        if answered is not None:
            body, headers = answered
            await answers.send(send, request, ROUTE, 200, body, headers)

    async def _page(
        self, request: Request, receive: Receive, topic: str
    ) -> tuple[bytes, list[tuple[str, str]]] | None:
        """The page's body and headers; None when the client left while it waited."""
        parts = self.parts
        args = request.args
        known_params(args, _PARAMS)
        key = key_param(args)
        limit = int_param(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        wait = int_param(args, "wait", 0, 0, parts.settings.max_wait_s)
        after = args.get("after") or EARLIEST
        latest = mode_param(args)
        principal = parts.gate.principal(request)
        address = parts.gate.address(request)
        broadcaster = await parts.reads.readable(topic, key, principal)
        start, page = await parts.reads.page(broadcaster, key, after, limit, address)
        if not page.events and wait:
            # A held long-poll holds a connection like a stream does: it counts as one.
            parts.streams.acquire(address)
            try:
                waited = await self._wait_for_events(
                    broadcaster, key, page, limit, _held_for(wait, principal, parts), receive
                )
            finally:
                parts.streams.release(address)
            if waited is None:
                return None
            page = waited
        # A full page from a fixed start names a fixed range of the log: it never changes.
        settled = start.fixed and len(page.events) == limit
        skipped = 0
        if latest:
            page, skipped = page.newest_per_key()
        body: dict[str, object] = {"events": page.render(), "next": page.next.encode(topic)}
        if latest:
            body["skipped"] = skipped
        if not start.recovered:
            # The cursor's events are gone from Kafka: say so rather than skip them silently.
            body["reset"] = start.cursor.encode(topic)
        private = parts.reads.is_private(topic)
        headers = [("Cache-Control", cache_policy.history(parts.settings, private, settled))]
        if not private:
            headers += cache_policy.tags(topic, key, live=not settled).items()
        return dump_json(body).encode(), headers

    async def _wait_for_events(
        self,
        broadcaster: Broadcaster,
        key: str | None,
        empty: Page,
        limit: int,
        held: tuple[float, bool],
        receive: Receive,
    ) -> Page | None:
        """Hold the request until the first event after ``empty.next`` exists, or the time
        ``held`` gives passes (a 401 if that was the token's expiry); None if the client
        leaves first.

        Called with no await since ``empty`` was read, so the ring still covers its cursor.
        """
        outbox = Outbox(Format.JSON, limit, self.parts.metrics.latency["poll"])
        subscription = broadcaster.subscribe(outbox, key, empty.next)
        left = asyncio.create_task(Body(receive).wait_for_disconnect())
        left.add_done_callback(lambda _task: outbox.close())
        waiting = self.parts.metrics.long_polls
        waiting.inc()
        wait_s, until_expiry = held
        try:
            arrived = await outbox.wait(wait_s)
            if left.done():
                return None
            if not arrived:
                if until_expiry:
                    raise TokenExpired("the token expired: ask again with a fresh one")
                return empty
            events = outbox.drain_events()[:limit]
            outbox.written()  # (the page is answered next: its latency is that of the wait)
        finally:
            waiting.dec()
            broadcaster.unsubscribe(subscription)
            left.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await left
        last = events[-1]
        floor = empty.next.as_dict() if empty.scope is IdScope.TOPIC else {}
        next_cursor = (last.raised_to(floor) if floor else None) or last.cursor(empty.scope)
        return Page(events, next_cursor, empty.scope, empty.next)


def _held_for(wait: int, principal: Principal | None, parts: StreamParts) -> tuple[float, bool]:
    """How long a long-poll may be held: its ``wait``, or less if its token expires first
    (then True: the answer says so)."""
    if principal is None or principal.expires_at is None:
        return float(wait), False
    left = principal.expires_at + parts.settings.jwt_leeway_s - time.time()
    if left < wait:
        return max(0.0, left), True
    return float(wait), False
