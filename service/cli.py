"""The ``herald`` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from .config import ConfigError, load_settings
from .logs import configure_logging
from .server import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="herald", description="Herald live-event service")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API (settings from HERALD_* variables)")
    serve.add_argument("--bind", help="host:port, overrides HERALD_BIND")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 2
    if args.bind:
        settings = dataclasses.replace(settings, bind=args.bind)
    configure_logging(settings.log_level)
    asyncio.run(run(settings))
    return 0
