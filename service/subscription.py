"""A subscription: one topic (and optionally one key) that a connection follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .events import Event, Scope

if TYPE_CHECKING:
    from .outbox import Outbox


@dataclass(eq=False, slots=True)
class Subscription:
    """One topic (optionally one key) that a connection follows, and where it stands."""

    topic: str
    key: str | None
    outbox: Outbox
    # The id of the last event handed to the client: the resume point if it must reconnect.
    cursor: str
    # Events whose partition offset is below this are already covered by the start cursor;
    # they may still be in flight from the consumer when a resume replays the ring.
    skip_below: dict[int, int] = field(default_factory=dict)
    # A whole-topic resume's start: ids are raised to it until this instance's own cursor
    # passes it (see Event.raised_to), then this is dropped and frames are shared again.
    floor: dict[int, int] | None = None
    # mode=latest: while events wait for the client, only the newest per key is kept.
    latest: bool = False
    # Which id its events carry: fixed by the key, kept as a field (read per delivery).
    scope: Scope = field(init=False)

    def __post_init__(self) -> None:
        self.scope = Scope.PARTITION if self.key is not None else Scope.TOPIC

    def own_id(self, event: Event) -> str | None:
        """This subscriber's id for ``event`` when the shared one would go back; else None."""
        if self.floor is None:
            return None
        raised = event.raised_to(self.floor)
        if raised is None:
            self.floor = None  # cursors only grow from here: shared ids are exact again
            return None
        return raised.encode(self.topic)
