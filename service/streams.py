"""The streaming connections of one instance: counted per client address and in all, and told
to say goodbye when the instance stops."""

from __future__ import annotations

from .errors import RateLimited, ServiceBusy
from .outbox import Outbox


class Streams:
    """Open WebSockets, SSE streams and held long-polls.

    Each holds a socket (and memory) for as long as the client likes: past
    ``max_connections`` an instance answers 503, past ``max_per_address`` one client gets 429.
    """

    def __init__(self, max_per_address: int, max_connections: int) -> None:
        self._per_address = max_per_address
        self._total = max_connections
        self._open: dict[str, int] = {}
        self.count = 0
        self._outboxes: set[Outbox] = set()
        self.closing = False

    def acquire(self, address: str) -> None:
        """Count a new connection; 503 past the global cap, 429 past the per-address one."""
        if self.count >= self._total:
            raise ServiceBusy(
                f"this instance holds its maximum of {self._total} connections", retry_after=5
            )
        if self._open.get(address, 0) >= self._per_address:
            raise RateLimited(
                f"at most {self._per_address} connections per client address", retry_after=5
            )
        self._open[address] = self._open.get(address, 0) + 1
        self.count += 1

    def release(self, address: str) -> None:
        left = self._open.get(address, 0) - 1
        if left > 0:
            self._open[address] = left
        else:
            self._open.pop(address, None)
        self.count -= 1

    def add(self, outbox: Outbox) -> None:
        """A connection's outbox, to be closed when the instance stops."""
        self._outboxes.add(outbox)
        if self.closing:
            outbox.close()

    def discard(self, outbox: Outbox) -> None:
        self._outboxes.discard(outbox)

    def close_all(self) -> None:
        """Tell every connection to say goodbye, so its client reconnects elsewhere."""
        self.closing = True
        for outbox in list(self._outboxes):
            outbox.close()
