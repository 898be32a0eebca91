"""The ``herald`` command: serve, check the configuration, mint a token."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import __version__
from .config import SECRETS, ConfigError, Settings, load_settings
from .kafka import FAILURES, Kafka
from .logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="herald", description="Herald live-event service")
    parser.add_argument("--version", action="version", version=f"herald {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (settings from HERALD_* variables)")
    serve.add_argument("--bind", help="host:port, overrides HERALD_BIND")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the listening socket, each with its own Kafka clients",
    )
    # A worker of `--workers N`: serve on the listening socket inherited as this descriptor.
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    # ... and answer the other workers' /metrics in this directory, as this worker number.
    serve.add_argument("--metrics-dir", type=Path, help=argparse.SUPPRESS)
    serve.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    # ... and, the first worker with HERALD_QUIC_BIND, serve HTTP/3 on this UDP socket.
    serve.add_argument("--quic-fd", type=int, help=argparse.SUPPRESS)
    check = commands.add_parser(
        "check-config", help="print the effective settings (secrets masked); non-zero on error"
    )
    check.add_argument("--kafka", action="store_true", help="also try to reach Kafka")
    token = commands.add_parser("token", help="mint a token with the configured key")
    token.add_argument("--sub", required=True, help="the token's subject")
    token.add_argument("--subscribe", action="append", default=[], help="a read grant")
    token.add_argument("--publish", action="append", default=[], help="a publish grant")
    token.add_argument("--create", action="append", default=[], help="a topic it may create")
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds it is valid")
    token.add_argument(
        "--key", type=Path, help="a PEM private key (RS256/ES256) instead of HERALD_JWT_SECRET"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        return check_config(settings, args.kafka)
    if args.command == "token":
        return mint(settings, args)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.bind:
        settings = dataclasses.replace(settings, bind=args.bind)
    configure_logging(settings.log_level, settings.log_format)
    # Imported here: the other commands need neither the server nor its event loop.
    from .server import serve_one, serve_workers
    from .tracing import from_environment

    try:
        tracing = from_environment()
    except ConfigError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1 and args.listen_fd is None:
        tracing.shutdown()  # each worker traces for itself
        return serve_workers(settings, args.workers, ["--bind", settings.bind])
    worker = None if args.metrics_dir is None else (args.metrics_dir, args.worker_index)
    serve_one(settings, args.listen_fd, worker, tracing, args.quic_fd)
    return 0


def check_config(settings: Settings, kafka: bool) -> int:
    """Every effective setting as a variable (secrets masked); with ``kafka``, whether the
    cluster answers."""
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if field.name in SECRETS and value:
            shown = "********"
        elif isinstance(value, tuple):
            shown = ",".join(value)
        elif isinstance(value, bool):
            shown = "true" if value else "false"
        else:
            shown = str(value)
        print(f"HERALD_{field.name.upper()}={shown}")
    if not kafka:
        return 0
    from .kafka.clients import AioKafka

    client = AioKafka(settings)
    try:
        topics = asyncio.run(_kafka_topics(settings, client))
    except FAILURES as exc:
        print(f"kafka: {client.explain(exc)}")
        return 1
    print(f"kafka: reachable at {settings.kafka_bootstrap} ({topics} topics)")
    return 0


async def _kafka_topics(settings: Settings, kafka: Kafka) -> int:
    admin = kafka.admin("herald-check-config")
    async with asyncio.timeout(settings.publish_timeout_s):
        await admin.start()
        try:
            return len(await admin.partition_counts())
        finally:
            await admin.close()


def mint(settings: Settings, args: argparse.Namespace) -> int:
    """Print a token signed with the configured secret (or ``--key``), for local use."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": args.sub,
        "iat": now,
        "exp": now + int(args.ttl),
        "herald": {"subscribe": args.subscribe, "publish": args.publish, "create": args.create},
    }
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if args.key is not None:
        private = serialization.load_pem_private_key(args.key.read_bytes(), password=None)
        if isinstance(private, rsa.RSAPrivateKey):
            algorithm = "RS256"
        elif isinstance(private, ec.EllipticCurvePrivateKey):
            algorithm = "ES256"
        else:
            print("herald: --key must be an RSA or EC P-256 private key", file=sys.stderr)
            return 2
        print(jwt.encode(claims, private, algorithm=algorithm))
        return 0
    if not settings.jwt_secret:
        print("herald: set HERALD_JWT_SECRET (or give --key) to sign a token", file=sys.stderr)
        return 2
    print(jwt.encode(claims, settings.jwt_secret, algorithm="HS256"))
    return 0
