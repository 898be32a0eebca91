"""Query and header parameters shared by the HTTP transports."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import BadParameter
from ..events import MAX_KEY_CHARS


def known_params(args: Mapping[str, str], known: frozenset[str]) -> None:
    """A cacheable URL names only what the route reads: any other parameter is a 400, so
    that no one can make a cache keep (or fetch) one answer under endless names."""
    unknown = sorted(set(args) - known - {"access_token"})
    if unknown:
        raise BadParameter(f"unknown query parameter {unknown[0][:40]!r}")


def key_param(args: Mapping[str, str]) -> str | None:
    """``?key=``; empty means the whole topic."""
    key = args.get("key") or None
    if key is not None and (len(key) > MAX_KEY_CHARS or not key.isprintable()):
        raise BadParameter(f"key must be 1 to {MAX_KEY_CHARS} printable characters")
    return key


def int_param(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise BadParameter(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def mode_param(args: Mapping[str, str]) -> bool:
    """``?mode=``: ``latest`` (only the newest waiting event per key) or ``all`` (the
    default: every event); True for latest."""
    return mode_value(args.get("mode"))


def mode_value(mode: object) -> bool:
    if mode in (None, "", "all"):
        return False
    if mode == "latest":
        return True
    raise BadParameter("mode is all or latest")
