"""Per-group metrics: 1-second buckets, log-linear histogram, windows, export."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canary_deploy.balancer.metrics import MetricsRecorder, bucket_bounds, bucket_index
from canary_deploy.balancer.prometheus import prometheus_text


def test_buckets_are_contiguous_and_at_most_one_sixteenth_wide() -> None:
    previous_high = 0.0
    for index in range(400):
        low, high = bucket_bounds(index)
        assert low == pytest.approx(previous_high)
        assert bucket_index(low) == index
        if low >= 32e-6:
            assert (high - low) / low <= 1 / 16 + 1e-12
        previous_high = high


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])  # the recorder's 1-second buckets
    return now


def test_windows_counts_and_quantiles(clock: list[float]) -> None:
    rec = MetricsRecorder()
    for i in range(100):
        rec.record_response("stable", 200, 0.001 * (i + 1))  # 1..100 ms
    rec.record_response("canary", 503, 0.002)
    rec.record_balancer_error("canary", 502)
    clock[0] += 1
    rec.record_response("canary", 404, 0.5)
    rec.record_balancer_error("canary", 504)

    first = rec.window("canary", 1_000_000, 1_000_001)
    assert (first.requests, first.status_5xx, first.balancer_502, first.errors) == (2, 1, 1, 2)
    both = rec.window("canary", 1_000_000, 1_000_002)
    assert (both.requests, both.status_4xx, both.balancer_504, both.errors) == (4, 1, 1, 3)

    counts = rec.counts(1_000_000, 1_000_002, thresholds_s=(bucket_bounds(bucket_index(0.05))[0],))
    assert counts["stable"].requests == 100
    assert counts["stable"].errors == 0
    assert 50 <= counts["stable"].slower_than[0] <= 52
    assert counts["canary"].errors == 3

    p50, p95, p99 = rec.quantiles("stable", 1_000_000, 1_000_002, (0.5, 0.95, 0.99))
    assert p50 == pytest.approx(0.050, rel=0.04)
    assert p95 == pytest.approx(0.095, rel=0.04)
    assert p99 == pytest.approx(0.099, rel=0.04)
    assert rec.quantiles("stable", 1_000_010, 1_000_020, (0.5,)) == (None,)


def test_prometheus_text_and_export_import(clock: list[float]) -> None:
    rec = MetricsRecorder()
    rec.record_response("stable", 200, 0.003)
    rec.record_balancer_error("canary", 503)
    rec.reject(400)
    rec.reject(408)
    clock[0] += 1
    rec.record_response("stable", 500, 0.2)
    text = prometheus_text(rec.totals(), rec.rejected)
    assert 'canary_balancer_requests_total{target_group="stable"} 2' in text
    assert 'canary_balancer_target_responses_total{target_group="stable",code="5xx"} 1' in text
    assert 'canary_balancer_elb_errors_total{target_group="canary",code="503"} 1' in text
    assert (
        'canary_balancer_target_response_seconds_bucket{target_group="stable",le="0.005"} 1' in text
    )
    assert 'canary_balancer_rejected_requests_total{code="400"} 1' in text
    assert 'canary_balancer_rejected_requests_total{code="408"} 1' in text
    assert 'canary_balancer_rejected_requests_total{code="503"} 0' in text
    assert rec.rejections() == {"400": 1, "405": 0, "408": 1, "417": 0, "501": 0, "503": 0}

    restored = MetricsRecorder()
    restored.import_buckets(rec.export_buckets(since=0))
    assert restored.counts(0, 2e6) == rec.counts(0, 2e6)
    assert len(rec.export_buckets(since=1_000_001)) == 1


def test_the_baseline_group_is_counted_exported_and_restored(clock: list[float]) -> None:
    rec = MetricsRecorder()
    for _ in range(3):
        rec.record_response("baseline", 200, 0.004)
    rec.record_response("baseline", 500, 0.004)
    rec.record_balancer_error("baseline", 502)
    rec.record_response("canary", 200, 0.004)
    clock[0] += 1
    counts = rec.counts(0, 2e6, thresholds_s=(0.001,))
    assert set(counts) == {"stable", "canary", "baseline"}
    assert (counts["baseline"].requests, counts["baseline"].errors) == (5, 2)
    assert counts["baseline"].slower_than == (4,)
    assert counts["canary"].requests == 1 and counts["stable"].requests == 0
    assert rec.quantiles("baseline", 0, 2e6, (0.5,))[0] == pytest.approx(0.004, rel=0.04)
    text = prometheus_text(rec.totals(), rec.rejected)
    assert 'canary_balancer_requests_total{target_group="baseline"} 5' in text
    assert 'canary_balancer_elb_errors_total{target_group="baseline",code="502"} 1' in text

    restored = MetricsRecorder()
    restored.import_buckets(rec.export_buckets(since=0))
    assert restored.counts(0, 2e6) == rec.counts(0, 2e6)


@given(st.floats(min_value=-1.0, max_value=3600.0, allow_nan=False))
def test_the_hot_path_books_a_latency_in_the_bucket_bucket_index_names(latency_s: float) -> None:
    # record_response inlines bucket_index(); this holds the copy to the reference.
    rec = MetricsRecorder()
    rec.record_response("stable", 200, latency_s)
    (cell,) = rec._current.values()
    assert cell.hist == {bucket_index(latency_s): 1}
