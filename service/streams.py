"""The streaming connections of one instance: counted per client address and in all, and told
to say goodbye when the instance stops."""

from __future__ import annotations

from collections.abc import Callable

from .errors import RateLimited, ServiceBusy
from .outbox import Outbox

# Encodes a lag notice (how many seconds behind; 0.0: live again) in a connection's format.
LagNotice = Callable[[float], bytes | str]


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
        self._outboxes: dict[Outbox, LagNotice | None] = {}
        self.closing = False
        # How far behind Kafka this instance told its clients it is (0.0: it is live).
        self.behind_s = 0.0

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

    def add(self, outbox: Outbox, lag_notice: LagNotice | None = None) -> None:
        """A connection's outbox, to be closed when the instance stops and told (with
        ``lag_notice``) while the instance lags behind Kafka."""
        self._outboxes[outbox] = lag_notice
        if self.closing:
            outbox.close()
        elif self.behind_s and lag_notice is not None:
            outbox.put_control(lag_notice(self.behind_s))

    def discard(self, outbox: Outbox) -> None:
        self._outboxes.pop(outbox, None)

    def tell_lag(self, behind_s: float) -> None:
        """Tell every connection how far behind Kafka this instance is (0.0: live again)."""
        self.behind_s = behind_s
        for outbox, lag_notice in list(self._outboxes.items()):
            if lag_notice is not None:
                outbox.put_control(lag_notice(behind_s))

    def close_all(self) -> None:
        """Tell every connection to say goodbye, so its client reconnects elsewhere."""
        self.closing = True
        for outbox in list(self._outboxes):
            outbox.close()
