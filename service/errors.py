"""Herald's exception hierarchy; each error knows its HTTP status and problem type.

HeraldError
├── Malformed              400  body or frame is not what its media type says
│   ├── BadCursor          400  cursor malformed, tampered or of another topic
│   └── BadParameter       400  query parameter out of range
├── Unauthenticated        401
│   └── TokenExpired       401  a held request outlived its token: ask again with a fresh one
├── Forbidden              403
├── UnknownTopic           404  not exposed, or not existing with creation off
├── MethodNotAllowed       405
├── RequestTimeout         408  the body did not arrive in time
├── TooLarge               413
├── UnsupportedMediaType   415
├── Invalid                422  well-formed but violates the schema
├── RateLimited            429  (Retry-After)
│   └── TooManySubscriptions 429  per WebSocket connection
├── ServiceBusy            503  connection cap reached (Retry-After)
└── KafkaUnavailable       503  (Retry-After)
"""

from __future__ import annotations

from typing import Any, ClassVar


class HeraldError(Exception):
    """A failure a client caused or must know about; rendered as problem+json or a WS error op."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after

    @property
    def type_uri(self) -> str:
        return f"urn:herald:problem:{self.code}"

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document."""
        return {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


class InternalError(HeraldError):
    """A fault of Herald's own (logged with its traceback; the client learns nothing of it)."""


class Malformed(HeraldError):
    status, code, title = 400, "malformed", "Malformed request"


class BadCursor(Malformed):
    code, title = "bad-cursor", "Invalid cursor"


class BadParameter(Malformed):
    code, title = "bad-parameter", "Invalid parameter"


class Unauthenticated(HeraldError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class TokenExpired(Unauthenticated):
    code, title = "token-expired", "Token expired"


class Forbidden(HeraldError):
    status, code, title = 403, "forbidden", "Forbidden"


class UnknownTopic(HeraldError):
    status, code, title = 404, "unknown-topic", "Unknown topic"


class RequestTimeout(HeraldError):
    status, code, title = 408, "request-timeout", "Request timeout"


class MethodNotAllowed(HeraldError):
    status, code, title = 405, "method-not-allowed", "Method not allowed"


class TooLarge(HeraldError):
    status, code, title = 413, "too-large", "Content too large"


class UnsupportedMediaType(HeraldError):
    status, code, title = 415, "unsupported-media-type", "Unsupported media type"


class Invalid(HeraldError):
    status, code, title = 422, "invalid", "Schema violation"

    def __init__(self, detail: str, errors: list[dict[str, str]]) -> None:
        super().__init__(detail)
        self.errors = errors

    def problem(self) -> dict[str, Any]:
        return {**super().problem(), "errors": self.errors}


class RateLimited(HeraldError):
    status, code, title = 429, "rate-limited", "Too many requests"


class TooManySubscriptions(RateLimited):
    code, title = "too-many-subscriptions", "Too many subscriptions"


class ServiceBusy(HeraldError):
    status, code, title = 503, "busy", "Too many connections"


class KafkaUnavailable(HeraldError):
    status, code, title = 503, "kafka-unavailable", "Kafka unavailable"

    # Kafka trouble mostly passes within seconds (a leader election, a reconnect).
    RETRY_AFTER_S = 2

    def __init__(self, detail: str, *, retry_after: int | None = RETRY_AFTER_S) -> None:
        super().__init__(detail, retry_after=retry_after)
