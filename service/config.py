"""Herald's settings: one typed place, read from ``HERALD_*`` environment variables."""

from __future__ import annotations

import difflib
import importlib.util
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """An environment variable holds a value Herald cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tunable of one Herald process; defaults suit local development."""

    bind: str = "127.0.0.1:8080"
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Exposed topics: the names in ``topic_list`` plus every name matching ``topics`` (an
    # empty pattern matches nothing). Giving only a list turns the default pattern off.
    topics: str = r"[A-Za-z0-9][A-Za-z0-9._-]*"
    topic_list: tuple[str, ...] = ()
    auto_create_topics: bool = True
    topic_partitions: int = 3
    topic_replication: int = 1
    topic_refresh_s: float = 2.0
    publish_timeout_s: float = 5.0
    producer_linger_ms: int = 0
    # How long Kafka may hold a fetch that finds no new data. Data arriving ends the wait at
    # once (fetch.min.bytes is 1), so this costs no latency; a short wait only makes an idle
    # instance ask for every partition again and again (41 % of a core at 20 ms with 450
    # partitions, 6 % at 500). It must end well before the request timeout.
    consumer_fetch_max_wait_ms: int = 500
    # After a fan-out that took t to write, a topic's next one waits this many times t: the
    # events arriving meanwhile reach each subscriber together, in one write (see offer in
    # broadcaster.py). 0: at once, whatever the CPU.
    fan_out_pause: float = 1.0
    # Net new objects between runs of Python's cycle collector (see server.py); 0: Python's.
    gc_threshold: int = 0
    ring_size: int = 1000
    subscriber_queue_size: int = 1000
    catchup_readers: int = 8
    idempotency_window_s: float = 600.0
    idempotency_max_keys: int = 100_000
    max_wait_s: int = 60
    snapshot_limit: int = 50
    snapshot_max_age_s: int = 1
    snapshot_stale_while_revalidate_s: int = 5
    # A history page that reached the live head (and a long-poll answer): kept this briefly.
    history_head_max_age_s: int = 1
    # Purge on publish (see README "Behind a CDN"): a URL the consumer sends coalesced
    # purges to, by surrogate key, at most one per topic per interval.
    purge_url: str = ""
    purge_method: str = "PURGE"
    purge_interval_s: float = 1.0
    max_body_bytes: int = 1024 * 1024
    max_batch_events: int = 100
    sse_heartbeat_s: float = 15.0
    sse_retry_ms: int = 2000
    ws_heartbeat_s: float = 25.0
    send_timeout_s: float = 10.0
    shutdown_grace_s: float = 5.0
    # Clients are told (WebSocket op and SSE event "lag") once the oldest record this
    # instance has not read waited this long (0: never); past lag_unready_s (0: never)
    # /readyz says not ready, so a load balancer sends new clients elsewhere.
    lag_notice_s: float = 5.0
    lag_unready_s: float = 0.0
    # Access control (see README "Security").
    # Secrets never appear in a repr of the settings (a log line, a traceback's locals).
    jwt_secret: str = field(default="", repr=False)
    jwt_public_key: str = ""
    jwks_file: str = ""
    # Keys at a URL (an identity provider's JWKS endpoint), fetched at startup and refreshed.
    jwks_url: str = ""
    jwks_refresh_s: float = 300.0
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_leeway_s: float = 30.0
    # Verified tokens remembered until their exp (0: verify every request's token).
    jwt_cache_size: int = 10_000
    token_cookie: str = "herald_token"
    # Topics anyone may read without a token (a regular expression, matched in full). Every
    # other topic needs a grant: nothing is public unless declared so.
    public_topics: str = ""
    allowed_origins: tuple[str, ...] = ()
    publish_open: bool = False
    # Topics one token subject (or, with open publishing, one address) may create an hour.
    topic_creations_per_hour: int = 10
    tls_cert: str = ""
    tls_key: str = ""
    # HTTP/3: a UDP host:port to serve QUIC on besides the TCP bind (needs the certificate);
    # empty: no QUIC. TCP answers then advertise it (Alt-Svc) on the public port: the bind's,
    # unless a load balancer in front listens on another one.
    quic_bind: str = ""
    quic_public_port: int = 0
    quic_alt_svc_max_age_s: int = 86_400
    hsts_max_age_s: int = 31_536_000
    hsts_include_subdomains: bool = True
    # Limits.
    max_subscriptions: int = 100
    max_connections: int = 10_000
    max_connections_per_address: int = 256
    # Events per second (a batch counts each event), per client address and per token.
    publish_rate_per_address: float = 5000.0
    publish_burst_per_address: int = 20_000
    publish_rate_per_token: float = 5000.0
    publish_burst_per_token: int = 20_000
    ws_message_rate_per_s: float = 100.0
    ws_message_burst: int = 200
    ws_idle_timeout_s: float = 30.0
    body_timeout_s: float = 10.0
    # The proxies in front whose X-Forwarded-For (and -Proto) Herald believes: empty for
    # none, a number N for "the N nearest hops are mine", or a comma-separated CIDR list.
    trusted_proxies: str = ""
    # Catch-up reads from Kafka: at most this many per client address at once, and a resume
    # waits at most this long for a free reader before it is refused with a 503.
    catchup_per_address: int = 2
    catchup_wait_s: float = 10.0
    # Records a history page may read from Kafka (a key's page skips other keys' records):
    # past it the page ends early, with the cursor to continue from.
    history_scan_records: int = 10_000
    log_level: str = "INFO"
    # text: one line per record for people; json: one JSON object per line for a collector.
    log_format: str = "text"
    # One line per answered request (herald.access, at INFO; see request_log.py).
    access_log: bool = False
    # Kafka security (see README "Deployment"): applied to every Kafka client.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    # A file holding the password (a mounted secret); its content wins over the variable.
    kafka_sasl_password_file: str = ""
    kafka_ssl_ca_file: str = ""
    kafka_ssl_cert_file: str = ""
    kafka_ssl_key_file: str = ""
    # Frames written to Hypercorn's HTTP/1.1 sockets straight from the fan-out
    # (transports/direct.py): "auto" where the running Hypercorn is one it was tested with,
    # "off" for the plain ASGI path everywhere.
    direct_writes: str = "auto"

    @property
    def topic_pattern(self) -> re.Pattern[str]:
        return re.compile(self.topics)

    @property
    def kafka_request_timeout_ms(self) -> int:
        """How long any Kafka request may take: a publish's whole deadline."""
        return int(self.publish_timeout_s * 1000)

    def kafka_sasl_password_value(self) -> str:
        """The SASL password: the password file's content when one is given."""
        if self.kafka_sasl_password_file:
            return Path(self.kafka_sasl_password_file).read_text().strip()
        return self.kafka_sasl_password

    @property
    def quic_port(self) -> int:
        """The UDP port clients are told to reach HTTP/3 on (Alt-Svc); 0 without QUIC."""
        if not self.quic_bind:
            return 0
        return self.quic_public_port or int(self.quic_bind.rsplit(":", 1)[1])

    @property
    def host(self) -> str:
        return self.bind.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])


_PREFIX = "HERALD_"


def variables() -> list[str]:
    """Every environment variable Herald reads, in the order Settings declares them."""
    return [f"{_PREFIX}{f.name.upper()}" for f in fields(Settings)]


# Settings whose values are never shown (check-config masks them; logs never hold them).
SECRETS = frozenset({"jwt_secret", "kafka_sasl_password"})
# Settings that were renamed or removed: naming one is an error that says what to do.
RETIRED = {
    "private_topics": "HERALD_PUBLIC_TOPICS: every topic not matching it needs a token",
    "trust_forwarded_for": "HERALD_TRUSTED_PROXIES (a hop count or CIDR list of your proxies)",
    "fan_out_interval_ms": "HERALD_FAN_OUT_PAUSE (a busy topic's fan-outs now pace themselves"
    " by how long each takes to write)",
}
# What Kubernetes puts into every pod for a Service named "herald" (docker-link style).
_SERVICE_LINK = re.compile(r"service_(host|port(_\w+)?)|port(_\d+_(tcp|udp|sctp)(_\w+)?)?")
_CHOICES = {
    "kafka_security_protocol": ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    "kafka_sasl_mechanism": ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    "direct_writes": ("auto", "off"),
    "log_format": ("text", "json"),
}


def _parse(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{_PREFIX}{name.upper()} must be true or false, not {raw!r}")
    if isinstance(default, tuple):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    try:
        value = type(default)(raw)
    except ValueError:
        value = None
    # float() takes "nan" and "inf": a timeout or a rate that never ends or never compares.
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        kind = type(default).__name__
        raise ConfigError(f"{_PREFIX}{name.upper()} must be a {kind}, not {raw!r}") from None
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment.

    A ``HERALD_*`` variable Herald does not know is an error that names it (and the closest
    known one): a misspelt or retired setting must never silently mean "off".
    """
    env = os.environ if environ is None else environ
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    for variable, raw in env.items():
        if not variable.startswith(_PREFIX):
            continue
        name = variable[len(_PREFIX) :].lower()
        if name not in known:
            raise ConfigError(_unknown(variable, name, known))
        values[name] = _parse(name, raw, known[name].default)
    if "topic_list" in values and "topics" not in values:
        values["topics"] = ""
    settings = Settings(**values)
    _check(settings)
    return settings


def _unknown(variable: str, name: str, known: Mapping[str, object]) -> str:
    if name in RETIRED:
        return f"{variable} is no longer a setting: use {RETIRED[name]}"
    if _SERVICE_LINK.fullmatch(name):
        return (
            f"{variable} is not a Herald setting: Kubernetes sets it for a Service named"
            " herald; set enableServiceLinks: false in the pod spec (the Helm chart does)"
        )
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {_PREFIX}{close[0].upper()}?)" if close else ""
    return f"{variable} is not a Herald setting{hint}"


def _check(settings: Settings) -> None:
    for name in ("topics", "public_topics"):
        try:
            re.compile(getattr(settings, name))
        except re.error as exc:
            raise ConfigError(f"HERALD_{name.upper()} is not a regular expression: {exc}") from None
    for name, choices in _CHOICES.items():
        if getattr(settings, name) not in choices:
            raise ConfigError(f"{_PREFIX}{name.upper()} must be one of {', '.join(choices)}")
    if settings.kafka_security_protocol.startswith("SASL_") and not settings.kafka_sasl_username:
        raise ConfigError(
            f"{_PREFIX}KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs"
            f" {_PREFIX}KAFKA_SASL_USERNAME and a password"
        )
    if bool(settings.kafka_ssl_cert_file) != bool(settings.kafka_ssl_key_file):
        raise ConfigError(
            f"{_PREFIX}KAFKA_SSL_CERT_FILE and {_PREFIX}KAFKA_SSL_KEY_FILE go together"
        )
    for name in (
        "kafka_sasl_password_file",
        "kafka_ssl_ca_file",
        "kafka_ssl_cert_file",
        "kafka_ssl_key_file",
        "jwt_public_key",
        "jwks_file",
        "tls_cert",
        "tls_key",
    ):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            raise ConfigError(f"{_PREFIX}{name.upper()} names no readable file: {path}")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("HERALD_TLS_CERT and HERALD_TLS_KEY go together")
    for name in ("bind", "quic_bind"):
        value = getattr(settings, name)
        if (value or name == "bind") and not _is_host_port(value):
            raise ConfigError(f"{_PREFIX}{name.upper()} must be host:port, not {value!r}")
    _quic(settings)
    _trusted_proxies(settings.trusted_proxies)
    positive = (
        "catchup_per_address",
        "history_scan_records",
        "topic_partitions",
        "topic_replication",
        "ring_size",
        "subscriber_queue_size",
        "snapshot_limit",
        "max_body_bytes",
        "max_batch_events",
    )
    for name in positive:
        if getattr(settings, name) < 1:
            raise ConfigError(f"{_PREFIX}{name.upper()} must be at least 1")
    for name in (
        "fan_out_pause",
        "jwt_cache_size",
        "gc_threshold",
        "lag_notice_s",
        "lag_unready_s",
    ):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{_PREFIX}{name.upper()} must be at least 0")
    # A fetch allowed to wait as long as a Kafka request may take would time out whenever a
    # topic is quiet.
    if not 0 <= settings.consumer_fetch_max_wait_ms < settings.kafka_request_timeout_ms:
        raise ConfigError(
            f"{_PREFIX}CONSUMER_FETCH_MAX_WAIT_MS must be at least 0 and below"
            f" {_PREFIX}PUBLISH_TIMEOUT_S ({settings.kafka_request_timeout_ms} ms)"
        )


def _is_host_port(value: str) -> bool:
    return ":" in value and value.rsplit(":", 1)[1].isdigit()


def _quic(settings: Settings) -> None:
    """HTTP/3 only when asked for, and only with what it needs: TLS and aioquic."""
    if not settings.quic_bind:
        return
    if not settings.tls_cert:
        # QUIC has no cleartext form: it is TLS 1.3 or nothing.
        raise ConfigError(f"{_PREFIX}QUIC_BIND needs {_PREFIX}TLS_CERT and {_PREFIX}TLS_KEY")
    if importlib.util.find_spec("aioquic") is None:
        raise ConfigError(
            f"{_PREFIX}QUIC_BIND needs aioquic: install Herald with its http3 extra"
            " (pip install 'herald[http3]'; the container image has it)"
        )
    if not 0 <= settings.quic_public_port <= 65_535:
        raise ConfigError(f"{_PREFIX}QUIC_PUBLIC_PORT must be a port number (0: the bind's)")
    if settings.quic_alt_svc_max_age_s < 1:
        raise ConfigError(f"{_PREFIX}QUIC_ALT_SVC_MAX_AGE_S must be at least 1")


def _trusted_proxies(value: str) -> None:
    """Check HERALD_TRUSTED_PROXIES: empty, a hop count, or CIDR networks."""
    value = value.strip()
    if not value or value.isdigit():
        return
    for part in value.split(","):
        try:
            ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"{_PREFIX}TRUSTED_PROXIES must be a number of hops or CIDR networks, not {part!r}"
            ) from None
