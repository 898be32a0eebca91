"""The ``herald`` command."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .config import ConfigError, load_settings
from .logs import configure_logging
from .server import serve_one, serve_workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="herald", description="Herald live-event service")
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
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    if args.bind:
        settings = dataclasses.replace(settings, bind=args.bind)
    configure_logging(settings.log_level)
    if args.workers > 1 and args.listen_fd is None:
        return serve_workers(settings, args.workers, ["--bind", settings.bind])
    serve_one(settings, args.listen_fd)
    return 0
