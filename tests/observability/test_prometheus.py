"""The stack's Prometheus text, read back with the Prometheus client library's own parser:
names, types, labels and values from a snapshot of known traffic."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.observability.prometheus import (
    EValue,
    RolloutSnapshot,
    StackSnapshot,
    render_stack,
)
from canary_deploy.weights import Weights


def parse(text: str) -> dict[str, Any]:
    """Family name -> (type, {(sample name, sorted labels): value})."""
    families = {}
    for family in text_string_to_metric_families(text):
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        families[family.name] = (family.type, samples)
    return families


def recorded() -> MetricsRecorder:
    """Known traffic: stable 3 x 200 (2 ms) and a target 503; canary a 404 (30 ms), a
    balancer 502 and a balancer 504; two requests refused with 400."""
    m = MetricsRecorder()
    for _ in range(3):
        m.record_response("stable", 200, 0.002)
    m.record_response("stable", 503, 0.002)
    m.record_response("canary", 404, 0.030)
    m.record_balancer_error("canary", 502)
    m.record_balancer_error("canary", 504)
    m.reject(400)
    m.reject(400)
    return m


def test_traffic_weights_and_refusals_parse_with_their_types_labels_and_values() -> None:
    m = recorded()
    text = render_stack(StackSnapshot(m.totals(), Weights(90, 5, 5), m.rejections()))
    families = parse(text)
    kind, requests = families["canary_requests"]
    assert kind == "counter"
    assert requests == {
        ("canary_requests_total", (("group", "stable"),)): 4,
        ("canary_requests_total", (("group", "canary"),)): 3,
        ("canary_requests_total", (("group", "baseline"),)): 0,
    }
    kind, responses = families["canary_responses"]
    assert kind == "counter"

    def response(group: str, cls: str) -> float:
        return responses[("canary_responses_total", (("class", cls), ("group", group)))]

    assert (response("stable", "2xx"), response("stable", "5xx")) == (3, 1)
    assert (response("canary", "4xx"), response("canary", "5xx")) == (1, 0)
    assert (response("canary", "balancer_502"), response("canary", "balancer_504")) == (1, 1)
    assert response("canary", "balancer_503") == 0
    _, errors = families["canary_errors"]
    assert errors[("canary_errors_total", (("group", "canary"),))] == 2
    assert errors[("canary_errors_total", (("group", "stable"),))] == 1
    kind, weights = families["canary_weight_ratio"]
    assert kind == "gauge"
    assert weights[("canary_weight_ratio", (("group", "stable"),))] == 0.9
    assert weights[("canary_weight_ratio", (("group", "baseline"),))] == 0.05
    kind, refused = families["canary_rejected_requests"]
    assert kind == "counter"
    assert refused[("canary_rejected_requests_total", (("code", "400"),))] == 2
    assert refused[("canary_rejected_requests_total", (("code", "503"),))] == 0
    assert families["canary_rollout_active"] == ("gauge", {("canary_rollout_active", ()): 0})
    assert "canary_rollout_info" not in families and "canary_judge_e_value" not in families


def test_the_latency_histogram_is_cumulative_in_seconds_with_sum_and_count() -> None:
    m = recorded()
    families = parse(render_stack(StackSnapshot(m.totals(), Weights(95, 5), {})))
    kind, samples = families["canary_target_response_seconds"]
    assert kind == "histogram"

    def sample(name: str, group: str, le: str | None = None) -> float:
        labels = {"group": group, **({"le": le} if le else {})}
        return samples[(f"canary_target_response_seconds{name}", tuple(sorted(labels.items())))]

    # stable: 4 answers at 2 ms; canary: 1 at 30 ms (the balancer's errors have no time).
    assert sample("_bucket", "stable", "0.001") == 0
    assert sample("_bucket", "stable", "0.0025") == 4
    assert sample("_bucket", "stable", "+Inf") == sample("_count", "stable") == 4
    assert 4 * 0.002 * 0.96 <= sample("_sum", "stable") <= 4 * 0.002 * 1.04
    assert sample("_bucket", "canary", "0.025") == 0
    assert sample("_bucket", "canary", "0.05") == 1
    assert sample("_count", "canary") == 1
    edges = sorted(
        float(dict(labels)["le"])
        for name, labels in samples
        if name.endswith("_bucket") and dict(labels)["group"] == "stable"
    )
    assert edges[-1] == float("inf") and edges == sorted(set(edges))


def test_a_running_rollout_shows_its_state_and_the_judges_e_values() -> None:
    rollout = RolloutSnapshot(
        id=7,
        status="running",
        step=2,
        steps=4,
        active=True,
        e_values=(
            EValue("errors", 3.5, 40.0, 12.0, 20.0),
            EValue('slower than 120 ms (stable "p95")', 0.5, 80.0, 1.5, 20.0),
        ),
    )
    families = parse(render_stack(StackSnapshot({}, Weights(90, 5, 5), {}, rollout)))
    assert families["canary_rollout_active"][1] == {("canary_rollout_active", ()): 1}
    info = families["canary_rollout_info"][1]
    assert info == {("canary_rollout_info", (("rollout", "7"), ("status", "running"))): 1}
    assert families["canary_rollout_step"][1] == {("canary_rollout_step", (("rollout", "7"),)): 2}
    assert families["canary_rollout_steps"][1] == {("canary_rollout_steps", (("rollout", "7"),)): 4}
    kind, e = families["canary_judge_e_value"]
    assert kind == "gauge"
    key = (("metric", "errors"), ("rollout", "7"), ("test", "harm"))
    assert e[("canary_judge_e_value", key)] == 3.5
    latency = 'slower than 120 ms (stable "p95")'  # quotes survive the escaping
    key = (("metric", latency), ("rollout", "7"), ("test", "non_inferiority"))
    assert e[("canary_judge_e_value", key)] == 1.5
    _, thresholds = families["canary_judge_e_value_threshold"]
    key = (("metric", "errors"), ("rollout", "7"), ("test", "harm"))
    assert thresholds[("canary_judge_e_value_threshold", key)] == 40.0


def test_an_ended_rollout_keeps_its_status_but_no_e_values() -> None:
    rollout = RolloutSnapshot(7, "rolled_back", 1, 4, active=False)
    families = parse(render_stack(StackSnapshot({}, Weights(100, 0), {}, rollout)))
    assert families["canary_rollout_active"][1] == {("canary_rollout_active", ()): 0}
    info = families["canary_rollout_info"][1]
    assert info == {("canary_rollout_info", (("rollout", "7"), ("status", "rolled_back"))): 1}
    assert "canary_judge_e_value" not in families
