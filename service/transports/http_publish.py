"""POST /v1/topics/{topic}/events: validate, write to Kafka, answer once acknowledged."""

from __future__ import annotations

import json
from typing import Any

import msgpack
from quart import Blueprint, Response, request

from ..errors import KafkaUnavailable, Malformed, TooLarge, UnsupportedMediaType
from ..state import herald

blueprint = Blueprint("publish", __name__)


@blueprint.post("/v1/topics/<topic>/events")
async def publish(topic: str) -> Response:
    h = herald()
    media_type = (request.mimetype or "").lower()
    if media_type not in ("application/json", "application/msgpack"):
        raise UnsupportedMediaType("send application/json or application/msgpack")
    length = request.content_length
    if length is not None and length > h.settings.max_body_bytes:
        raise TooLarge(f"the body may hold at most {h.settings.max_body_bytes} bytes")
    raw = await request.get_data(cache=False)
    assert isinstance(raw, bytes)
    events = h.validator.batch(_parse(raw, media_type))
    try:
        published = await h.publisher.publish(topic, events)
    except KafkaUnavailable:
        h.metrics.publish_failures.inc()
        raise
    h.metrics.published.inc(len(published))
    body = {"events": [item.as_dict() for item in published]}
    return Response(json.dumps(body), status=201, mimetype="application/json")


def _parse(raw: bytes, media_type: str) -> Any:
    if media_type == "application/msgpack":
        try:
            return msgpack.unpackb(raw, raw=False, strict_map_key=True)
        except (ValueError, msgpack.UnpackException) as exc:
            raise Malformed(f"body is not msgpack: {exc}") from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Malformed(f"body is not JSON: {exc}") from None
