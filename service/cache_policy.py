"""What a shared cache may keep, and under which names: every cacheable answer's headers.

The rules follow RFC 9111 so that a stock CDN needs no Herald-specific configuration: only
``Cache-Control`` decides, validators are strong ETags, and token-protected answers are never
public. Surrogate keys name what an answer holds, so a CDN can purge by topic or key.
"""

from __future__ import annotations

from urllib.parse import quote

from .config import Settings

# Token-protected answers: no shared cache may keep them, and no browser should either.
PRIVATE = "private, no-store"
NEVER = "no-store"
# A page that names a fixed range of the log never changes: a year is forever for a cache.
IMMUTABLE = "public, max-age=31536000, immutable"
# The browser client: not versioned in its URL, so not immutable; kept briefly, then
# revalidated with its ETag (a 304).
CLIENT_SCRIPT = "public, max-age=300, stale-while-revalidate=3600"


def snapshot(settings: Settings, private: bool) -> str:
    if private:
        return PRIVATE
    return (
        f"public, max-age={settings.snapshot_max_age_s}, "
        f"stale-while-revalidate={settings.snapshot_stale_while_revalidate_s}"
    )


def history(settings: Settings, private: bool, settled: bool) -> str:
    """A settled page (full, after a cursor, all retained) is immutable; others are brief.

    Even an empty long-poll answer is cached briefly rather than not at all: a cache treats
    an uncacheable answer as a reason to stop collapsing that URL's waiting requests.
    """
    if private:
        return PRIVATE
    if settled:
        return IMMUTABLE
    return f"public, max-age={settings.history_head_max_age_s}"


def topic_tag(topic: str) -> str:
    """Every cached answer of ``topic`` (purge it to drop them all)."""
    return f"herald/{topic}"


def live_tag(topic: str) -> str:
    """The answers of ``topic`` that change as events arrive: snapshots and head pages."""
    return f"herald/{topic}/live"


def key_tag(topic: str, key: str) -> str:
    # Tags are separated by spaces (Surrogate-Key) or commas (Cache-Tag): keep neither.
    return f"herald/{topic}/key/{quote(key, safe='')}"


def tags(topic: str, key: str | None, live: bool) -> dict[str, str]:
    """``Surrogate-Key`` (Fastly, Varnish) and ``Cache-Tag`` (Cloudflare) for one answer."""
    names = [topic_tag(topic)]
    if live:
        names.append(live_tag(topic))
    if key is not None:
        names.append(key_tag(topic, key))
    return {"Surrogate-Key": " ".join(names), "Cache-Tag": ",".join(names)}
