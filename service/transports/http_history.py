"""GET /v1/topics/{topic}/events: a page of history after a cursor, or a long-poll for one.

A plain ASGI route: a long-poll is held open (like a stream) until an event arrives, its wait
ends or the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from .. import cache_policy
from ..asgi import Receive, Scope, Send
from ..broadcaster import Broadcaster
from ..config import Settings
from ..errors import HeraldError
from ..events import Scope as IdScope
from ..metrics import Metrics
from ..outbox import Outbox
from ..reads import Reads
from ..resume import EARLIEST, Page
from ..wire import Format, dump_json
from .http import Answers, Body, Request
from .identity import Gate
from .params import int_param, key_param

ROUTE = "history"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class HistoryRoute:
    """Answers history pages and long-polls."""

    settings: Settings
    gate: Gate
    reads: Reads
    answers: Answers
    metrics: Metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send, topic: str) -> None:
        request = Request(scope)
        try:
            answered = await self._page(request, receive, topic)
        except HeraldError as exc:
            await self.answers.problem(send, request, ROUTE, exc)
            return
        if answered is not None:
            body, headers = answered
            await self.answers.send(send, request, ROUTE, 200, body, headers)

    async def _page(
        self, request: Request, receive: Receive, topic: str
    ) -> tuple[bytes, list[tuple[str, str]]] | None:
        """The page's body and headers; None when the client left while it waited."""
        args = request.args
        key = key_param(args)
        limit = int_param(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        wait = int_param(args, "wait", 0, 0, self.settings.max_wait_s)
        after = args.get("after") or EARLIEST
        broadcaster = await self.reads.readable(topic, key, self.gate.principal(request))
        start, page = await self.reads.page(broadcaster, key, after, limit)
        if not page.events and wait:
            waited = await self._wait_for_events(broadcaster, key, page, limit, wait, receive)
            if waited is None:
                return None
            page = waited
        body = {"events": page.render(), "next": page.next.encode(topic)}
        if not start.recovered:
            # The cursor's events are gone from Kafka: say so rather than skip them silently.
            body["reset"] = start.cursor.encode(topic)
        # A full page from a fixed start names a fixed range of the log: it never changes.
        settled = start.fixed and len(page.events) == limit
        private = self.reads.is_private(topic)
        headers = [("Cache-Control", cache_policy.history(self.settings, private, settled))]
        if not private:
            headers += cache_policy.tags(topic, key, live=not settled).items()
        return dump_json(body).encode(), headers

    async def _wait_for_events(
        self,
        broadcaster: Broadcaster,
        key: str | None,
        empty: Page,
        limit: int,
        wait: int,
        receive: Receive,
    ) -> Page | None:
        """Hold the request until the first event after ``empty.next`` exists, or ``wait``
        seconds pass; None if the client leaves first.

        Called with no await since ``empty`` was read, so the ring still covers its cursor.
        """
        outbox = Outbox(Format.JSON, limit)
        subscription = broadcaster.subscribe(outbox, key, empty.next)
        left = asyncio.create_task(Body(receive).wait_for_disconnect())
        left.add_done_callback(lambda _task: outbox.close())
        waiting = self.metrics.long_polls
        waiting.inc()
        try:
            arrived = await outbox.wait(wait)
            if left.done():
                return None
            if not arrived:
                return empty
            events = outbox.drain_events()[:limit]
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
