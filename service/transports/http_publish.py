"""POST /v1/topics/{topic}/events: validate, write to Kafka, answer once acknowledged."""

from __future__ import annotations

import json

from quart import Blueprint, Response, request

from ..errors import KafkaUnavailable, TooLarge, UnsupportedMediaType
from ..state import herald
from ..wire import parse_json, parse_msgpack

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
    body = parse_msgpack(raw) if media_type == "application/msgpack" else parse_json(raw)
    events = h.validator.batch(body)
    try:
        published = await h.publisher.publish(topic, events)
    except KafkaUnavailable:
        h.metrics.publish_failures.inc()
        raise
    h.metrics.published.inc(len(published))
    body = {"events": [item.as_dict() for item in published]}
    return Response(json.dumps(body), status=201, mimetype="application/json")
