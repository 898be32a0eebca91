"""GET /v1/topics/{topic}/events: a page of history after a cursor, or a long-poll for one."""

from __future__ import annotations

from quart import Blueprint, Response, request

from .. import cache_policy
from ..broadcaster import Broadcaster
from ..events import Scope
from ..outbox import Outbox
from ..resume import EARLIEST, Page
from ..state import herald
from ..wire import Format, dump_json
from .identity import principal_of
from .params import int_param, key_param

blueprint = Blueprint("history", __name__)

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@blueprint.get("/v1/topics/<topic>/events")
async def history(topic: str) -> Response:
    h = herald()
    key = key_param(request.args)
    limit = int_param(request.args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    wait = int_param(request.args, "wait", 0, 0, h.settings.max_wait_s)
    after = request.args.get("after") or EARLIEST
    broadcaster = await h.readable(topic, key, principal_of(h, request))
    start = await h.resumer.start(broadcaster, key, after)
    page = await h.resumer.page(broadcaster, key, start.cursor, limit)
    if not page.events and wait:
        page = await _wait_for_events(broadcaster, key, page, limit, wait)
    body = {
        "events": page.render(),
        "next": page.next.encode(topic),
    }
    if not start.recovered:
        # The cursor's events are gone from Kafka: say so rather than skip them silently.
        body["reset"] = start.cursor.encode(topic)
    # A full page from a fixed start names a fixed range of the log: it never changes.
    settled = start.fixed and len(page.events) == limit
    private = h.access.is_private(topic)
    headers = {"Cache-Control": cache_policy.history(h.settings, private, settled)}
    if not private:
        headers.update(cache_policy.tags(topic, key, live=not settled))
    return Response(dump_json(body), mimetype="application/json", headers=headers)


async def _wait_for_events(
    broadcaster: Broadcaster, key: str | None, empty: Page, limit: int, wait: int
) -> Page:
    """Hold the request until the first event after ``empty.next`` exists, or ``wait`` s pass.

    Called with no await since ``empty`` was read, so the ring still covers its cursor.
    """
    outbox = Outbox(Format.JSON, limit)
    subscription = broadcaster.subscribe(outbox, key, empty.next)
    waiting = herald().metrics.long_polls
    waiting.inc()
    try:
        if not await outbox.wait(wait):
            return empty
        events = outbox.drain_events()[:limit]
    finally:
        waiting.dec()
        broadcaster.unsubscribe(subscription)
    last = events[-1]
    floor = empty.next.as_dict() if empty.scope is Scope.TOPIC else {}
    next_cursor = (last.raised_to(floor) if floor else None) or last.cursor(empty.scope)
    return Page(events, next_cursor, empty.scope, empty.next)
