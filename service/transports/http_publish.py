"""POST /v1/topics/{topic}/events: validate, write to Kafka, answer once acknowledged."""

from __future__ import annotations

import asyncio
import json

from quart import Blueprint, Request, Response, request
from werkzeug.exceptions import RequestTimeout

from ..errors import BadParameter, KafkaUnavailable, TooLarge, UnsupportedMediaType
from ..idempotency import MAX_KEY_CHARS
from ..state import herald
from ..wire import parse_json, parse_msgpack
from .identity import client_address, principal_of

blueprint = Blueprint("publish", __name__)


@blueprint.post("/v1/topics/<topic>/events")
async def publish(topic: str) -> Response:
    h = herald()
    principal = principal_of(h, request)
    media_type = (request.mimetype or "").lower()
    if media_type not in ("application/json", "application/msgpack"):
        raise UnsupportedMediaType("send application/json or application/msgpack")
    length = request.content_length
    if length is not None and length > h.settings.max_body_bytes:
        raise TooLarge(f"the body may hold at most {h.settings.max_body_bytes} bytes")
    raw = await _body(request)
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None and not _valid_key(idempotency_key):
        raise BadParameter(f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable characters")
    body = parse_msgpack(raw) if media_type == "application/msgpack" else parse_json(raw)
    events = h.validator.batch(body)
    h.admit_publish(principal, client_address(h, request), topic, events)
    try:
        published, replayed = await h.ingest.publish(topic, events, idempotency_key)
    except KafkaUnavailable:
        h.metrics.publish_failures.inc()
        raise
    if not replayed:
        h.metrics.published.inc(len(published))
    answer = {"events": [item.as_dict() for item in published]}
    response = Response(json.dumps(answer), status=201, mimetype="application/json")
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def _body(incoming: Request) -> bytes:
    """The whole body, within BODY_TIMEOUT (a body that trickles in is a 408).

    Request.get_data does the same through asyncio.wait_for, which starts a task and yields
    to the event loop even when the body is already in, as a small POST's is.
    """
    try:
        async with asyncio.timeout(incoming.body_timeout):
            raw: bytes = await incoming.body
    except TimeoutError:
        raise RequestTimeout() from None
    incoming.body.clear()
    return raw


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_CHARS and key.isprintable()
