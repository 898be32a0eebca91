"""service/subscription.py: what a connection follows and which ids its events carry."""

from __future__ import annotations

from service.cursor import Cursor
from service.events import Scope
from service.outbox import Outbox
from service.subscription import Subscription
from service.wire import Format

TOPIC = "orders"


def subscribe(outbox: Outbox, key: str | None = None) -> Subscription:
    return Subscription(TOPIC, key, outbox, cursor=Cursor().encode(TOPIC))


def test_keyed_subscription_has_partition_scope_and_topic_subscription_topic_scope() -> None:
    outbox = Outbox(Format.JSON, capacity=1)
    assert subscribe(outbox, "k").scope is Scope.PARTITION
    assert subscribe(outbox).scope is Scope.TOPIC
