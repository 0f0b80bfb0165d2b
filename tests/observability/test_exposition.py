"""The text exposition writer, held to the Prometheus client library's parser: escaping,
histograms, and the standalone balancer's own `/metrics` written with it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.prometheus import prometheus_text
from canary_deploy.observability.exposition import Family, Sample, histogram, render


def test_label_values_with_quotes_backslashes_and_newlines_read_back_unchanged() -> None:
    odd = 'a "quoted" \\ back\nslash'
    text = render(
        [Family("x_total", "counter", "Help with \\ and\nnewline.", [Sample({"v": odd}, 2)])]
    )
    (family,) = text_string_to_metric_families(text)
    assert family.documentation == "Help with \\ and\nnewline."
    assert [(s.name, s.labels, s.value) for s in family.samples] == [("x_total", {"v": odd}, 2)]


def test_a_histogram_has_cumulative_buckets_sum_and_count_and_empty_families_are_left_out() -> None:
    samples = histogram({"g": "a"}, [(0.1, 1), (1.0, 3), (float("inf"), 4)], 2.5)
    text = render(
        [Family("h_seconds", "histogram", "H.", samples), Family("none", "gauge", "N.", [])]
    )
    (family,) = text_string_to_metric_families(text)
    assert family.type == "histogram"
    got = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert got == {
        ("h_seconds_bucket", "0.1"): 1,
        ("h_seconds_bucket", "1"): 3,
        ("h_seconds_bucket", "+Inf"): 4,
        ("h_seconds_sum", None): 2.5,
        ("h_seconds_count", None): 4,
    }


def test_the_standalone_balancers_text_parses_with_its_names_and_a_sum() -> None:
    m = MetricsRecorder()
    m.record_response("stable", 200, 0.004)
    m.record_balancer_error("canary", 503)
    m.reject(408)
    families = {
        f.name: f for f in text_string_to_metric_families(prometheus_text(m.totals(), m.rejected))
    }
    assert {f.type for f in families.values()} == {"counter", "histogram"}
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert values[("canary_balancer_requests_total", (("target_group", "stable"),))] == 1
    key = (("code", "503"), ("target_group", "canary"))
    assert values[("canary_balancer_elb_errors_total", key)] == 1
    assert values[("canary_balancer_rejected_requests_total", (("code", "408"),))] == 1
    stable = (("target_group", "stable"),)
    assert values[("canary_balancer_target_response_seconds_count", stable)] == 1
    assert 0.0038 < values[("canary_balancer_target_response_seconds_sum", stable)] < 0.0042
