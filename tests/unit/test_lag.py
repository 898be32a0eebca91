"""How far behind Kafka the consumer is, the lag metrics, and when clients are told."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.kafka import TopicPartition
from service.lag import REPEAT_S, Lag
from service.metrics import LAG_PARTITIONS_LISTED, Metrics

A0, A1 = TopicPartition("a", 0), TopicPartition("a", 1)


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def watch(notice_s: float = 5.0, unready_s: float = 0.0) -> tuple[Lag, Metrics, list[float]]:
    metrics, told = Metrics(), []
    return Lag(notice_s, unready_s, metrics, told.append), metrics, told


def test_the_wait_counts_from_the_probe_that_first_saw_a_record_unread() -> None:
    lag, metrics, _ = watch()
    lag.observe({A0: (10, 10), A1: (5, 8)}, now=100.0)
    assert lag.behind_s == 0.0
    lag.observe({A0: (10, 12), A1: (6, 9)}, now=103.0)
    # A1: offsets below 8 were unread at 100 and 6 and 7 still are; A0 just fell behind.
    assert lag.behind_s == 3.0
    assert samples(metrics, "herald_consumer_lag_records") == {(): 5.0}
    assert samples(metrics, "herald_consumer_lag_seconds") == {(): 3.0}
    assert samples(metrics, "herald_partition_lag_seconds") == {
        (("partition", "0"), ("topic", "a")): 0.0,
        (("partition", "1"), ("topic", "a")): 3.0,
    }


def test_the_wait_is_that_of_the_oldest_record_still_unread() -> None:
    lag, _, _ = watch()
    lag.observe({A0: (0, 100)}, now=0.0)
    lag.observe({A0: (50, 150)}, now=4.0)
    assert lag.behind_s == 4.0
    # The first 100 are read: the oldest unread one was first seen at 4.
    lag.observe({A0: (120, 200)}, now=5.0)
    assert lag.behind_s == 1.0
    lag.observe({A0: (160, 220)}, now=6.0)
    assert lag.behind_s == 1.0
    lag.observe({A0: (220, 220)}, now=7.0)
    assert lag.behind_s == 0.0


def test_a_steady_lag_reads_steady() -> None:
    lag, _, told = watch(notice_s=2.5)
    # The head moves 10 a second; the consumer reads 3 seconds behind it.
    for second in range(20):
        lag.observe({A0: (max(0, 10 * (second - 3)), 10 * second + 10)}, now=float(second))
        if second >= 3:
            assert lag.behind_s == 3.0
    assert told == [3.0, 3.0, 3.0, 3.0]  # at 3, then every REPEAT_S: never "live" between


def test_only_the_partitions_most_behind_are_listed() -> None:
    lag, metrics, _ = watch()
    partitions = [TopicPartition("t", p) for p in range(LAG_PARTITIONS_LISTED * 3)]
    lag.observe({tp: (0, 1) for tp in partitions}, now=0.0)
    lag.observe({tp: (0, 1 + tp.partition) for tp in partitions}, now=1.0)
    listed = samples(metrics, "herald_partition_lag_records")
    assert len(listed) == LAG_PARTITIONS_LISTED
    assert samples(metrics, "herald_consumer_lag_records") == {
        (): sum(1 + p.partition for p in partitions)
    }
    # All waited as long: the ones with more records unread come first.
    assert min(listed.values()) == 1 + LAG_PARTITIONS_LISTED * 2


def test_clients_are_told_past_the_threshold_again_while_it_lasts_and_once_live() -> None:
    lag, metrics, told = watch(notice_s=5.0)
    lag.observe({A0: (0, 10)}, now=0.0)
    lag.observe({A0: (1, 11)}, now=4.0)
    assert told == []
    lag.observe({A0: (2, 12)}, now=5.0)
    assert told == [5.0] and lag.noticing
    assert samples(metrics, "herald_lag_notice") == {(): 1.0}
    lag.observe({A0: (3, 13)}, now=6.0)
    assert told == [5.0]  # not on every probe
    lag.observe({A0: (4, 14)}, now=5.0 + REPEAT_S)
    assert told == [5.0, 5.0 + REPEAT_S]
    lag.observe({A0: (14, 14)}, now=11.0)
    assert told[-1] == 0.0 and not lag.noticing
    assert samples(metrics, "herald_lag_notice") == {(): 0.0}


def test_a_lag_between_half_the_threshold_and_it_does_not_flap() -> None:
    lag, _, told = watch(notice_s=4.0)
    lag.observe({A0: (0, 10)}, now=0.0)
    lag.observe({A0: (1, 15)}, now=4.0)
    assert told == [4.0]
    lag.observe({A0: (10, 20)}, now=7.0)  # the oldest unread was seen at 4: 3 s, above 2
    assert told == [4.0] and lag.noticing
    lag.observe({A0: (20, 21)}, now=9.0)
    assert told == [4.0, 0.0]


def test_no_notice_when_turned_off_and_unready_only_when_asked() -> None:
    lag, _, told = watch(notice_s=0.0)
    lag.observe({A0: (0, 10)}, now=0.0)
    lag.observe({A0: (0, 10)}, now=100.0)
    assert told == [] and not lag.unready
    strict, _, _ = watch(unready_s=30.0)
    strict.observe({A0: (0, 10)}, now=0.0)
    strict.observe({A0: (0, 10)}, now=29.0)
    assert not strict.unready
    strict.observe({A0: (0, 10)}, now=30.0)
    assert strict.unready
