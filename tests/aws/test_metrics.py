"""CloudWatch metrics per target group, with a stubbed client (moto has no percentiles)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import ANY

from canary_deploy.aws.metrics import CloudWatchMetrics
from canary_deploy.aws.stack import StackOutputs
from canary_deploy.backend import VersionCounts
from tests.aws.stubs import ERRORS, OUTPUTS, OUTPUTS_TWO_GROUPS, stubbed

NOW = 1_764_300_000.0


def series(qid: str, *values: float) -> dict[str, Any]:
    return {"Id": qid, "Label": qid, "Values": list(values), "StatusCode": "Complete"}


def test_counts_sum_minutes_and_derive_slower_than_from_trimmed_count() -> None:
    client, stub = stubbed("cloudwatch")
    stub.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                series("stable_req", 1000, 900),
                series("stable_err", 10, 8),
                series("stable_n", 1000, 900),
                series("stable_le0", 1900 - 40, 0),  # 40 slower than 0.5 s
                series("canary_req", 60, 40),
                series("canary_err", 5, 2),
                series("canary_n", 60, 40),
                series("canary_le0", 90, 0),  # 10 slower than 0.5 s
                series("baseline_req", 50, 50),
                series("baseline_err", 1, 0),
                series("baseline_n", 50, 50),
                series("baseline_le0", 97, 0),  # 3 slower than 0.5 s
            ]
        },
        {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY},
    )
    with stub:
        counts = CloudWatchMetrics(client, lambda: OUTPUTS, ERRORS).counts(NOW - 600, NOW, [0.5])
    assert counts["stable"] == VersionCounts(requests=1900, errors=18, slower_than=(40,))
    assert counts["canary"] == VersionCounts(requests=100, errors=7, slower_than=(10,))
    assert counts["baseline"] == VersionCounts(requests=100, errors=1, slower_than=(3,))


@pytest.mark.parametrize(
    ("outputs", "groups"),
    [(OUTPUTS, {"stable", "canary", "baseline"}), (OUTPUTS_TWO_GROUPS, {"stable", "canary"})],
)
def test_counts_have_a_key_for_every_group_the_stack_has(
    outputs: StackOutputs, groups: set[str]
) -> None:
    client, stub = stubbed("cloudwatch")
    stub.add_response("get_metric_data", {"MetricDataResults": []})
    with stub:
        counts = CloudWatchMetrics(client, lambda: outputs, ERRORS).counts(NOW - 60, NOW)
    assert set(counts) == groups
    # No datapoints (a group without traffic yet): zeros, not a missing key.
    assert all(c == VersionCounts(requests=0, errors=0) for c in counts.values())


def test_queries_use_the_alb_dimensions_and_trimmed_count_statistic() -> None:
    client, stub = stubbed("cloudwatch")
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.extend(params["MetricDataQueries"])

    client.meta.events.register("provide-client-params.cloudwatch.GetMetricData", record)
    stub.add_response("get_metric_data", {"MetricDataResults": []})
    with stub:
        CloudWatchMetrics(client, lambda: OUTPUTS, ERRORS).counts(NOW - 600, NOW, [0.25])
    stats = {q["Id"]: q["MetricStat"] for q in seen}
    assert stats["canary_le0"]["Stat"] == "TC(:0.25)"
    assert stats["stable_req"]["Metric"]["MetricName"] == "RequestCount"
    dims = {d["Name"]: d["Value"] for d in stats["canary_err"]["Metric"]["Dimensions"]}
    assert dims == {
        "LoadBalancer": "app/demo-lb/50dc6c495c0c9188",
        "TargetGroup": "targetgroup/demo-ca/9a1b",
    }
    assert stats["canary_err"]["Metric"]["MetricName"] == "HTTPCode_Target_5XX_Count"
    # Every group is queried on its own TargetGroup dimension, with the same statistics.
    for group, suffix in (("stable", "demo-st/73e2"), ("baseline", "demo-bl/5c0d")):
        for metric in ("req", "err", "n", "le0"):
            dims = {
                d["Name"]: d["Value"] for d in stats[f"{group}_{metric}"]["Metric"]["Dimensions"]
            }
            assert dims["TargetGroup"] == f"targetgroup/{suffix}"
    assert stats["baseline_le0"]["Stat"] == "TC(:0.25)"


def test_quantiles_of_the_baseline_are_read_on_its_target_group() -> None:
    client, stub = stubbed("cloudwatch")
    seen: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData",
        lambda params, **_: seen.extend(params["MetricDataQueries"]),
    )
    stub.add_response("get_metric_data", {"MetricDataResults": [series("q0", 0.31)]})
    with stub:
        qs = CloudWatchMetrics(client, lambda: OUTPUTS, ERRORS).quantiles(
            "baseline", NOW - 300, NOW, [0.95]
        )
    assert qs == (0.31,)
    stat = seen[0]["MetricStat"]
    assert stat["Stat"] == "p95"
    dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
    assert dims["TargetGroup"] == "targetgroup/demo-bl/5c0d"


def test_quantiles_are_read_as_percentile_statistics() -> None:
    client, stub = stubbed("cloudwatch")
    stub.add_response(
        "get_metric_data",
        {"MetricDataResults": [series("q0", 0.120), series("q1", 0.480), series("q2")]},
    )
    with stub:
        qs = CloudWatchMetrics(client, lambda: OUTPUTS, ERRORS).quantiles(
            "canary", NOW - 300, NOW, [0.5, 0.95, 0.99]
        )
    assert qs == (0.120, 0.480, None)


def test_traffic_is_unknown_without_datapoints_and_filled_with_them() -> None:
    client, stub = stubbed("cloudwatch")
    stub.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                series("stable_req", 5000),
                series("stable_err", 25),
                series("stable_p50", 0.05),
                series("stable_p95", 0.2),
                series("stable_p99", 0.4),
                series("canary_req"),
                series("canary_err"),
                series("baseline_req", 250),
                series("baseline_err", 0),
                series("baseline_p95", 0.19),
            ]
        },
    )
    with stub:
        traffic = CloudWatchMetrics(client, lambda: OUTPUTS, ERRORS, clock=lambda: NOW).traffic()
    stable = traffic["stable"]
    assert stable is not None
    assert (stable.requests, stable.errors, stable.error_rate) == (5000, 25, 0.005)
    assert (stable.p50_s, stable.p95_s, stable.p99_s) == (0.05, 0.2, 0.4)
    assert traffic["canary"] is None
    baseline = traffic["baseline"]
    assert baseline is not None
    assert (baseline.requests, baseline.errors, baseline.p95_s) == (250, 0, 0.19)
