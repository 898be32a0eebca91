"""Cache-Control for every cacheable answer, decided in one place."""

from __future__ import annotations

from .config import Settings

# Token-protected answers: no shared cache may keep them, and no browser should either.
PRIVATE = "private, no-store"
NEVER = "no-store"


def snapshot(settings: Settings, private: bool) -> str:
    if private:
        return PRIVATE
    return (
        f"public, max-age={settings.snapshot_max_age_s}, "
        f"stale-while-revalidate={settings.snapshot_stale_while_revalidate_s}"
    )


def history(private: bool) -> str:
    return PRIVATE if private else "no-cache"
