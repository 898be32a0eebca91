"""cache_policy: what a shared cache may keep, and the surrogate keys that name it."""

from __future__ import annotations

from service import cache_policy
from service.config import Settings

SETTINGS = Settings(
    snapshot_max_age_s=2, snapshot_stale_while_revalidate_s=7, history_head_max_age_s=3
)


def test_a_public_snapshot_is_kept_briefly_and_served_stale_while_revalidating() -> None:
    assert cache_policy.snapshot(SETTINGS, private=False) == (
        "public, max-age=2, stale-while-revalidate=7"
    )


def test_a_private_answer_is_never_stored() -> None:
    assert cache_policy.snapshot(SETTINGS, private=True) == "private, no-store"
    for settled in (True, False):
        assert cache_policy.history(SETTINGS, private=True, settled=settled) == (
            "private, no-store"
        )


def test_a_settled_history_page_is_immutable_and_a_head_page_brief() -> None:
    assert cache_policy.history(SETTINGS, private=False, settled=True) == (
        "public, max-age=31536000, immutable"
    )
    assert cache_policy.history(SETTINGS, private=False, settled=False) == "public, max-age=3"


def test_tags_name_the_topic_its_live_answers_and_the_key() -> None:
    tags = cache_policy.tags("orders.eu", "user 42/a,b", live=True)
    keys = tags["Surrogate-Key"].split(" ")
    assert keys == [
        "herald/orders.eu",
        "herald/orders.eu/live",
        "herald/orders.eu/key/user%2042%2Fa%2Cb",
    ]
    assert tags["Cache-Tag"].split(",") == keys


def test_a_settled_page_is_not_tagged_live_so_purges_on_publish_spare_it() -> None:
    tags = cache_policy.tags("orders", None, live=False)
    assert tags["Surrogate-Key"] == "herald/orders"
    assert cache_policy.live_tag("orders") not in tags["Surrogate-Key"].split(" ")
