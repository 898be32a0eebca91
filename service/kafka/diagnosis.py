"""Why Kafka could not be reached, in one line that names the setting to look at.

aiokafka raises only "Unable to bootstrap from [...]" when no bootstrap server lets it in; the
cause (a refused login, an untrusted certificate, nothing listening) is in a record it logs
just before, once per attempt. ``ConnectionTrouble`` keeps that record's text instead of
letting it through, so that Herald reports each cause once, in its own words (``explain``),
rather than aiokafka's line on every retry.
"""

from __future__ import annotations

import logging
import time

from ..config import Settings

# aiokafka's own logger, and the records it writes when bootstrapping fails.
_LOGGER = "aiokafka"
_BOOTSTRAP_FAILURES = ('Unable connect to "', 'Unable to request metadata from "')

# What to look at, by what the cause says (first match wins).
_HINTS = (
    (
        "SaslAuthenticationFailed",
        "the broker refused the login: check HERALD_KAFKA_SASL_USERNAME, the password "
        "(HERALD_KAFKA_SASL_PASSWORD or _FILE) and HERALD_KAFKA_SASL_MECHANISM",
    ),
    (
        "UnsupportedSaslMechanism",
        "the broker does not offer this SASL mechanism (HERALD_KAFKA_SASL_MECHANISM)",
    ),
    (
        "mismatch",
        "the broker's certificate does not name the host in HERALD_KAFKA_BOOTSTRAP",
    ),
    (
        "CERTIFICATE_VERIFY_FAILED",
        "the broker's certificate is not signed by a CA Herald trusts "
        "(HERALD_KAFKA_SSL_CA_FILE names the CA; without it, the system's CAs)",
    ),
    (
        "Connect call failed",
        "nothing accepts connections there (HERALD_KAFKA_BOOTSTRAP)",
    ),
    (
        "closed",
        "the broker hung up: does its listener speak HERALD_KAFKA_SECURITY_PROTOCOL "
        "(and SASL, if it asks for it)?",
    ),
)


class ConnectionTrouble(logging.Filter):
    """On aiokafka's logger: keeps the text of its bootstrap failures and drops the records."""

    def __init__(self) -> None:
        super().__init__()
        self._last = ""
        self._at = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(_BOOTSTRAP_FAILURES):
            return True
        # 'Unable connect to "host:port": cause' -> 'host:port: cause'
        self._last = message.split('"', 1)[1].replace('":', ":", 1).strip()
        self._at = time.monotonic()
        return False

    def recent(self, within_s: float) -> str:
        """The last failure's cause if it came in the last ``within_s`` seconds, else ""."""
        return self._last if time.monotonic() - self._at <= within_s else ""


def watch() -> ConnectionTrouble:
    """The process's one ``ConnectionTrouble``, installed on aiokafka's logger."""
    logger = logging.getLogger(_LOGGER)
    for existing in logger.filters:
        if isinstance(existing, ConnectionTrouble):
            return existing
    trouble = ConnectionTrouble()
    logger.addFilter(trouble)
    return trouble


def explain(settings: Settings, cause: str) -> str:
    """One line: where Herald tried to connect, as whom, what failed and what to check."""
    protocol = settings.kafka_security_protocol
    how = protocol
    if protocol.startswith("SASL_"):
        how += f", {settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username!r}"
    line = f"cannot connect to Kafka at {settings.kafka_bootstrap} ({how}): {cause}"
    hint = next((hint for marker, hint in _HINTS if marker in cause), None)
    return f"{line}; {hint}" if hint else line
