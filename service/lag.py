"""How far this instance's consumer is behind Kafka's head, and telling its clients so."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Mapping

from .kafka import TopicPartition
from .metrics import LAG_PARTITIONS_LISTED, Metrics

# While an instance lags, its clients hear how far behind it is this often.
REPEAT_S = 5.0


# Probes remembered per partition while it lags (one per probe that found new records).
_KEPT = 3600


class Lag:
    """Per partition, the records between the consumer and the head, and how long the oldest
    of them has waited: known to within one probe, from the first probe whose end offset was
    past the consumer's position (that record was in Kafka then). A record's own timestamp
    would not do: the producer sets it, and a quiet partition's last record is old the
    moment a new one arrives.

    Past ``notice_s`` (0: never) ``tell`` is called with the wait, again every ``REPEAT_S``
    while it lasts, and with 0.0 once the consumer is back within half of it.
    """

    def __init__(
        self,
        notice_s: float,
        unready_s: float,
        metrics: Metrics,
        tell: Callable[[float], None],
    ) -> None:
        self._notice_s = notice_s
        self._unready_s = unready_s
        self._metrics = metrics
        self._tell = tell
        # Per lagging partition, (end offset, time.monotonic()) of the probes that saw it grow.
        self._seen: dict[TopicPartition, deque[tuple[int, float]]] = {}
        self.behind_s = 0.0
        self.noticing = False
        self._told_at = 0.0

    @property
    def unready(self) -> bool:
        """Whether the lag is past HERALD_LAG_UNREADY_S (when set): /readyz then says no."""
        return bool(self._unready_s) and self.behind_s >= self._unready_s

    def observe(self, heads: Mapping[TopicPartition, tuple[int, int]], now: float) -> None:
        """``heads``: per assigned partition, (the consumer's position, Kafka's end offset)."""
        behind: dict[TopicPartition, tuple[int, float]] = {}
        seen: dict[TopicPartition, deque[tuple[int, float]]] = {}
        for tp, (position, end) in heads.items():
            if position >= end:
                continue
            probes = self._seen.get(tp) or deque()
            while probes and probes[0][0] <= position:
                probes.popleft()  # every record that probe saw has been read
            if (not probes or probes[-1][0] < end) and len(probes) < _KEPT:
                probes.append((end, now))
            seen[tp] = probes
            behind[tp] = (end - position, now - probes[0][1])
        self._seen = seen
        self.behind_s = max((age for _, age in behind.values()), default=0.0)
        self._export(behind)
        self._notify(now)

    def _export(self, behind: dict[TopicPartition, tuple[int, float]]) -> None:
        metrics = self._metrics
        metrics.consumer_lag_records.set(sum(records for records, _ in behind.values()))
        metrics.consumer_lag_seconds.set(self.behind_s)
        metrics.partition_lag_records.clear()
        metrics.partition_lag_seconds.clear()
        worst = heapq.nlargest(LAG_PARTITIONS_LISTED, behind.items(), key=_age_then_records)
        for tp, (records, age) in worst:
            labels = (tp.topic, str(tp.partition))
            metrics.partition_lag_records.labels(*labels).set(records)
            metrics.partition_lag_seconds.labels(*labels).set(age)

    def _notify(self, now: float) -> None:
        notice_s = self._notice_s
        if not notice_s:
            return
        if self.behind_s >= notice_s:
            if not self.noticing or now - self._told_at >= REPEAT_S:
                self.noticing = True
                self._told_at = now
                self._metrics.lag_notice.set(1)
                self._tell(self.behind_s)
        elif self.noticing and self.behind_s <= notice_s / 2:
            # Half the threshold, not the threshold: a lag hovering near it does not flap.
            self.noticing = False
            self._metrics.lag_notice.set(0)
            self._tell(0.0)


def _age_then_records(item: tuple[TopicPartition, tuple[int, float]]) -> tuple[float, int]:
    records, age = item[1]
    return age, records
