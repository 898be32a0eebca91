"""POST /v1/topics/{topic}/events: validate, write to Kafka, answer once acknowledged.

A plain ASGI route: a publish is the request that backends send many times a second, and a
framework's machinery around a request (contexts, hooks, signals, request and response
objects) was once half of the server time of one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from ..asgi import Receive, Scope, Send
from ..auth import Principal
from ..cache_policy import NEVER
from ..config import Settings
from ..errors import BadParameter, HeraldError, InternalError, UnsupportedMediaType
from ..idempotency import MAX_IDEMPOTENCY_KEY_CHARS
from ..ingest import Ingest
from ..records import MSGPACK
from ..wire import parse_json, parse_msgpack
from .http import JSON, Answers, Body, ClientLeft, Request, too_large
from .identity import Gate

log = logging.getLogger(__name__)

ROUTE = "publish"
_REFUSED_EARLY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class PublishRoute:
    """Answers publishes: 201 with where Kafka stored each event, or a problem."""

    settings: Settings
    gate: Gate
    ingest: Ingest
    answers: Answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send, topic: str) -> None:
        request = Request(scope)
        body = Body(receive)
        settings = self.settings
        problem: HeraldError | None = None
        answer, headers = b"", list[tuple[str, str]]()
        # What is read off a refused body before the answer goes out (a server that closes
        # with unread bytes resets the connection, answer and all): up to twice the largest
        # a publish may have, enough for one a little too large; little for a client refused
        # before its body was looked at (no token, rate limited).
        allowance = _REFUSED_EARLY_BYTES
        try:
            principal = self.gate.principal(request)
            address = self.gate.address(request)
            self.ingest.knock(principal, address)
            allowance = 2 * settings.max_body_bytes
            answer, headers = await self._publish(request, body, topic, principal, address)
        except ClientLeft:
            return
        except HeraldError as error:
            problem = error
        except Exception:
            log.exception("publish to %r failed", topic)
            problem = InternalError("the publish failed inside Herald")
        try:
            await body.discard(allowance, settings.body_timeout_s, request.content_length)
        except ClientLeft:
            return
        if not body.complete:
            # The server closes a connection with an unread body once the answer is out:
            # a keep-alive client must know not to send its next request on it.
            headers.append(("Connection", "close"))
        if problem is not None:
            await self.answers.problem(send, request, ROUTE, problem, headers)
        else:
            await self.answers.send(send, request, ROUTE, 201, answer, headers)

    async def _publish(
        self,
        request: Request,
        body: Body,
        topic: str,
        principal: Principal | None,
        address: str,
    ) -> tuple[bytes, list[tuple[str, str]]]:
        """The body and headers of the 201 answer; raises what the client gets a problem for."""
        settings = self.settings
        media_type = request.mimetype
        if media_type not in (JSON, MSGPACK):
            raise UnsupportedMediaType("send application/json or application/msgpack")
        limit = settings.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise too_large(limit)
        raw = await body.read(limit, settings.body_timeout_s)
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key is not None and not _valid_key(idempotency_key):
            raise BadParameter(
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable characters"
            )
        data = parse_msgpack(raw) if media_type == MSGPACK else parse_json(raw)
        events = self.ingest.validator.batch(data)
        self.ingest.admit(principal, address, topic, (event.key for event in events))
        published, replayed = await self.ingest.publish(
            topic,
            events,
            principal,
            address,
            idempotency_key,
            traceparent=request.headers.get("traceparent"),
        )
        answer = {"events": [item.as_dict() for item in published]}
        headers = [("Idempotent-Replayed", "true")] if replayed else []
        return json.dumps(answer).encode(), [*headers, ("Cache-Control", NEVER)]


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and key.isprintable()
