"""GET /v1/topics/{topic}/snapshot: the latest events and the cursor to stream on from."""

from __future__ import annotations

from urllib.parse import urlencode

from quart import Blueprint, Response, request

from .. import cache_policy
from ..config import Settings
from ..events import Scope
from ..reads import Reads
from ..wire import dump_json
from .identity import Gate
from .params import int_param, key_param, known_params

MAX_LIMIT = 1000
_PARAMS = frozenset({"key", "limit"})


def snapshot_blueprint(settings: Settings, gate: Gate, reads: Reads) -> Blueprint:
    """The snapshot route, served by Quart (a plain request and answer with an ETag)."""
    blueprint = Blueprint("snapshot", __name__)

    @blueprint.get("/v1/topics/<topic>/snapshot", endpoint="snapshot")
    async def snapshot(topic: str) -> Response:
        try:
            return await _snapshot(topic)
        finally:
            reads.done(topic)

    async def _snapshot(topic: str) -> Response:
        known_params(request.args, _PARAMS)
        key = key_param(request.args)
        limit = int_param(request.args, "limit", settings.snapshot_limit, 1, MAX_LIMIT)
        broadcaster = await reads.readable(topic, key, gate.principal(request))
        cursor = broadcaster.cursor(key).encode(topic)
        # The cursor names every event the body can hold, so it is a strong validator.
        etag = f'"{cursor}"'
        stream_query = urlencode({k: v for k, v in (("key", key), ("since", cursor)) if v})
        private = reads.is_private(topic)
        headers = {
            "ETag": etag,
            "Cache-Control": cache_policy.snapshot(settings, private),
            "Link": f'</v1/topics/{topic}/stream?{stream_query}>; rel="stream"',
        }
        if not private:
            headers.update(cache_policy.tags(topic, key, live=True))
        if request.if_none_match.contains(cursor):
            return Response(b"", status=304, headers=headers)
        scope = Scope.TOPIC if key is None else Scope.PARTITION
        body = {
            "topic": topic,
            "key": key,
            "cursor": cursor,
            "events": [event.as_dict(scope) for event in broadcaster.recent(key, limit)],
        }
        return Response(dump_json(body), mimetype="application/json", headers=headers)

    return blueprint
