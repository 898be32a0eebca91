"""Python's cycle collector, kept from pausing an instance that holds many connections.

A full collection walks every object the collector tracks. With 10 000 open connections
(some 70 objects each) that took 0.5-0.85 s on the benchmark machine, every few seconds
under load, and found nothing to free: the objects are connections that are still open.
So after each full collection, what survived it is frozen out of later ones (``gc.freeze``),
and full collections walk only what is newer. Frozen objects are still freed when nothing
refers to them; only cycles among them wait, and a closed connection's objects do form
cycles (the server's and Herald's alike). So once ``THAW_AFTER_CLOSES`` streaming
connections have closed, or after ``THAW_AFTER_FREEZES`` freezes, everything is unfrozen
and the next full collection walks (and frees) it all: one long pause per that much churn
instead of one every few seconds.
"""

from __future__ import annotations

import gc
from typing import Any

# Closed streaming connections whose objects may wait, frozen, for a full walk: some 30 KiB
# each, so at most about 30 MiB.
THAW_AFTER_CLOSES = 1000
# And whatever else froze while in flight (requests, events): a full walk at least this often.
THAW_AFTER_FREEZES = 16


class Collector:
    """The freeze-and-thaw policy above, driven by gc's own callbacks."""

    def __init__(self) -> None:
        self.closes = 0
        self.freezes = 0
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            gc.callbacks.append(self._collected)
            self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            gc.callbacks.remove(self._collected)
            self.installed = False
        gc.unfreeze()
        self.closes = self.freezes = 0

    def connection_closed(self) -> None:
        """A WebSocket or SSE stream ended: its objects may be cycles that only a full walk
        frees."""
        if not self.installed:
            return
        self.closes += 1
        if self.closes >= THAW_AFTER_CLOSES:
            self._thaw()

    def _collected(self, phase: str, info: dict[str, Any]) -> None:
        if phase != "stop" or info["generation"] != 2:
            return
        gc.freeze()
        self.freezes += 1
        if self.freezes >= THAW_AFTER_FREEZES:
            self._thaw()

    def _thaw(self) -> None:
        gc.unfreeze()
        self.closes = self.freezes = 0


COLLECTOR = Collector()
