"""The charts' data: buckets read once, newest first, the one filling read again."""

from __future__ import annotations

from canary_deploy.web.series import TrafficSeries
from tests.web.fakes import SteadyMetrics


def test_the_newest_buckets_are_read_first_and_each_complete_one_only_once() -> None:
    metrics = SteadyMetrics({"stable": 95.0, "canary": 5.0})
    series = TrafficSeries(metrics, bucket_s=10, lag_s=1, window_s=100, max_reads=4)
    series.refresh(1001.0)  # data up to 1000: buckets 900..990, none filling yet
    firsts = [start for start, _ in metrics.count_calls]
    assert firsts == [990, 980, 970, 960]
    series.refresh(1006.0)  # 1000..1005 is filling; 6 older buckets still to read
    assert [start for start, _ in metrics.count_calls[4:]] == [950, 940, 930, 920, 1000]
    series.refresh(1007.0)
    assert sorted(start for start, _ in metrics.count_calls[9:]) == [900, 910, 1000]
    points = series.points("canary")
    assert [p.start for p in points] == [900 + 10 * i for i in range(11)]
    assert points[0].rate == 5.0 and points[-1].seconds == 6.0
    assert series.roles() == ["stable", "canary"]


def test_buckets_older_than_the_window_are_dropped() -> None:
    series = TrafficSeries(
        SteadyMetrics({"stable": 10.0}), bucket_s=10, lag_s=0, window_s=30, partial=False
    )
    series.refresh(100.0)
    series.refresh(200.0)
    assert [p.start for p in series.points("stable")] == [170, 180, 190]


def test_a_version_without_requests_has_no_latency_and_no_error_rate() -> None:
    metrics = SteadyMetrics({"stable": 10.0, "canary": 0.0})
    series = TrafficSeries(metrics, bucket_s=10, lag_s=0, window_s=10, partial=False)
    series.refresh(20.0)
    (canary,) = series.points("canary")
    assert canary.requests == 0 and canary.error_rate is None
    assert canary.quantiles_s == (None, None, None)
    assert {v for v, _, _ in metrics.quantile_calls} == {"stable"}
    assert series.roles() == ["stable"]
