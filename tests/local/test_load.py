"""`canary load`'s plan validation and summaries (the real runs are in the e2e tests)."""

from __future__ import annotations

from array import array

import pytest

from canary_deploy.errors import UsageError
from canary_deploy.local.load import LoadPlan, LoadResult, Sample, VersionSummary, request_body


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "https://x.example"}, "needs an http:// URL"),
        ({"path": "whoami"}, "path must start with '/'"),
        ({"requests": 0}, "at least 1"),
        ({"rate": 0.0}, "rate must be positive"),
        ({"duration_s": -1.0}, "duration must be positive"),
        ({"concurrency": 0}, "concurrency must be at least 1"),
    ],
)
def test_bad_plans_are_usage_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"url": "http://127.0.0.1:8080", **kwargs}
    with pytest.raises(UsageError, match=message):
        LoadPlan(**args)  # type: ignore[arg-type]


def test_percentiles_are_nearest_rank() -> None:
    summary = VersionSummary("v1", latencies=array("d", [0.001 * i for i in range(1, 101)]))
    assert summary.percentile(0.5) == pytest.approx(0.050)
    assert summary.percentile(0.99) == pytest.approx(0.099)
    assert VersionSummary("v2").percentile(0.5) is None


def test_result_counts_5xx_and_no_response_as_errors_per_version() -> None:
    result = LoadResult()
    for sample in [
        Sample(1, 200, 0.01, "v1"),
        Sample(2, 503, 0.01, "v2"),
        Sample(3, 0, 0.5, "?", error="connection closed by peer"),
        Sample(4, 404, 0.01, "v1"),  # a client error is the caller's, not the version's
    ]:
        result.add(sample)
    assert {v: (s.requests, s.errors) for v, s in result.by_version.items()} == {
        "v1": (2, 0),
        "v2": (1, 1),
        "?": (1, 1),
    }
    assert (result.total.requests, result.total.errors) == (4, 2)
    assert len(result.total.latencies) == 3, "no latency for requests without a response"
    assert result.statuses == {200: 1, 503: 1, 0: 1, 404: 1}


def test_a_body_that_is_not_json_is_refused_before_anything_is_sent() -> None:
    assert request_body(None) is None
    assert request_body('{"x": [1, 2]}') == b'{"x": [1, 2]}'
    with pytest.raises(UsageError, match="--data is not valid JSON"):
        request_body("{x")


def test_a_run_where_nothing_answered_is_told_apart_from_errors() -> None:
    result = LoadResult()
    assert not result.unanswered  # nothing sent
    result.add(Sample(1, 0, 0.0, "?", error="connection refused"))
    assert result.unanswered
    result.add(Sample(2, 503, 0.01, "?"))
    assert not result.unanswered


def test_the_json_summary_has_every_version_and_the_total() -> None:
    result = LoadResult(started=100.0, elapsed_s=2.0)
    for i, (status, version) in enumerate([(200, "v1"), (200, "v2"), (500, "v2"), (0, "?")]):
        result.add(Sample(i, status, 0.01 * (i + 1), version))
    doc = result.to_dict()
    assert doc["statuses"] == {"0": 1, "200": 2, "500": 1}
    assert list(doc["versions"]) == ["?", "v1", "v2"]
    assert doc["versions"]["v2"]["errors"] == 1 and doc["versions"]["v2"]["error_rate"] == 0.5
    assert doc["total"]["requests"] == 4 and doc["requests_per_s"] == 2.0
    assert doc["total"]["p99_s"] == 0.03  # the unanswered request has no latency
