"""CloudWatch metrics per target group, with a stubbed client (moto has no percentiles)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import ANY

from canary_deploy.aws.metrics import CloudWatchMetrics, arn_suffix
from canary_deploy.aws.outputs import StackOutputs
from canary_deploy.backend import RoleCounts
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
                series("stable_t2", 990, 892),
                series("stable_t5", 10, 8),
                series("stable_n", 1000, 900),
                series("stable_le0", 1900 - 40, 0),  # 40 slower than 0.5 s
                series("canary_req", 60, 40),
                series("canary_t2", 55, 38),
                series("canary_t5", 5, 2),
                series("canary_n", 60, 40),
                series("canary_le0", 90, 0),  # 10 slower than 0.5 s
                series("baseline_req", 50, 50),
                series("baseline_t2", 49, 50),
                series("baseline_t5", 1, 0),
                series("baseline_n", 50, 50),
                series("baseline_le0", 97, 0),  # 3 slower than 0.5 s
            ]
        },
        {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY},
    )
    with stub:
        counts = CloudWatchMetrics(client, lambda: OUTPUTS, ERRORS).counts(NOW - 600, NOW, [0.5])
    assert counts["stable"] == RoleCounts(requests=1900, errors=18, slower_than=(40,))
    assert counts["canary"] == RoleCounts(requests=100, errors=7, slower_than=(10,))
    assert counts["baseline"] == RoleCounts(requests=100, errors=1, slower_than=(3,))


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
    assert all(c == RoleCounts(requests=0, errors=0) for c in counts.values())


def test_the_judge_never_queries_a_tester_group() -> None:
    # Tester routes forward to the tester groups: their requests are not a random sample,
    # so no metric the judge or `status` reads may have a tester group as its dimension.
    client, stub = stubbed("cloudwatch")
    seen: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        for query in params["MetricDataQueries"]:
            dims = {d["Name"]: d["Value"] for d in query["MetricStat"]["Metric"]["Dimensions"]}
            seen.append(dims["TargetGroup"])

    client.meta.events.register("provide-client-params.cloudwatch.GetMetricData", record)
    metrics = CloudWatchMetrics(client, lambda: OUTPUTS, ERRORS, clock=lambda: NOW)
    for _ in range(2 + len(OUTPUTS.groups)):
        stub.add_response("get_metric_data", {"MetricDataResults": []})
    with stub:
        metrics.counts(NOW - 600, NOW, [0.25, 0.5])
        metrics.traffic()
        for group in OUTPUTS.groups:
            metrics.quantiles(group, NOW - 600, NOW, [0.95, 0.99])
    testers = {arn_suffix(arn, "targetgroup/") for arn in OUTPUTS.tester_group_arns().values()}
    mains = {arn_suffix(OUTPUTS.target_group_arn(g), "targetgroup/") for g in OUTPUTS.groups}
    assert len(testers) == 3 and set(seen) == mains
    assert not testers & set(seen)


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
    dims = {d["Name"]: d["Value"] for d in stats["canary_t5"]["Metric"]["Dimensions"]}
    assert dims == {
        "LoadBalancer": "app/demo-lb/50dc6c495c0c9188",
        "TargetGroup": "targetgroup/demo-ca/9a1b",
    }
    assert stats["canary_t5"]["Metric"]["MetricName"] == "HTTPCode_Target_5XX_Count"
    # Every group is queried on its own TargetGroup dimension, with the same statistics.
    for group, suffix in (("stable", "demo-st/73e2"), ("baseline", "demo-bl/5c0d")):
        for metric in ("req", "t5", "conn", "n", "le0"):
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
                series("stable_t2", 4975),
                series("stable_t5", 25),
                series("stable_p50", 0.05),
                series("stable_p95", 0.2),
                series("stable_p99", 0.4),
                series("canary_req"),
                series("canary_t5"),
                series("baseline_req", 250),
                series("baseline_t2", 250),
                series("baseline_t5", 0),
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


def _counts_with(results: list[dict[str, Any]]) -> dict[str, RoleCounts]:
    client, stub = stubbed("cloudwatch")
    stub.add_response("get_metric_data", {"MetricDataResults": results})
    with stub:
        return CloudWatchMetrics(client, lambda: OUTPUTS, ERRORS).counts(NOW - 120, NOW)


def test_requests_no_target_answered_are_errors_of_their_group() -> None:
    """A crashed or hanging canary: ALB answers 502/504 itself. Those are in the group's
    RequestCount but in none of its HTTPCode_Target_* counts, and must count as the
    canary's errors (they would otherwise make it look healthier)."""
    counts = _counts_with(
        [
            series("stable_req", 1000, 1000),
            series("stable_t2", 1000, 998),
            series("stable_t4", 0, 2),  # a 404 is an answer, not an error
            series("canary_req", 50, 50),
            series("canary_t2", 50, 10),  # 40 requests got the balancer's 502/504
            series("canary_t5", 0, 0),
        ]
    )
    assert counts["stable"].errors == 0
    assert counts["canary"] == RoleCounts(requests=100, errors=40, slower_than=())


def test_failed_target_connections_count_even_when_retried() -> None:
    counts = _counts_with(
        [
            series("canary_req", 100),
            series("canary_t2", 95),
            series("canary_t5", 5),
            series("canary_conn", 7),
        ]
    )
    assert counts["canary"].errors == 5 + 7


def test_traffic_counts_unanswered_requests_as_errors() -> None:
    client, stub = stubbed("cloudwatch")
    stub.add_response(
        "get_metric_data",
        {"MetricDataResults": [series("canary_req", 200), series("canary_t2", 150)]},
    )
    with stub:
        traffic = CloudWatchMetrics(client, lambda: OUTPUTS, ERRORS, clock=lambda: NOW).traffic()
    canary = traffic["canary"]
    assert canary is not None
    assert (canary.requests, canary.errors) == (200, 50)
