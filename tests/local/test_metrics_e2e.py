"""Prometheus metrics out of a real local stack (issue 16 part 5): known traffic through
the listener, scraped from the daemon's `GET /metrics` and read back with the Prometheus
client library's parser; the loopback port (`[local] metrics_port`) during a rollout."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from canary_deploy.local.processes import free_port
from tests.local.conftest import LocalStack, wait_for
from tests.rollout.test_local_e2e import app, load

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family name -> type, (sample name, sorted labels) -> value)."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def refused_request(stack: LocalStack) -> None:
    """A request the balancer answers itself (400), booked on no target group."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")


def test_known_traffic_is_scraped_per_group_with_classes_histogram_and_weights(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok(
        "deploy", "--image-stable", app("v1"), "--image-canary", app("v2", error_rate=1),
        "--stable-count", "1", "--stable-weight", "100", "--canary-weight", "0",
    )  # fmt: skip
    stack.load(20)
    stack.load(5, path="/no-such-page")  # 404s from stable
    stack.ok("set-weights", "10", "90")
    stack.ok("set-weights", "0", "100")
    stack.load(10)  # the canary answers 500 to every one
    refused_request(stack)
    text = stack.admin("GET", "/metrics")
    types, samples = parse(text)
    assert types["canary_requests"] == "counter"
    assert types["canary_responses"] == "counter"
    assert types["canary_target_response_seconds"] == "histogram"
    assert types["canary_weight_ratio"] == "gauge"
    assert value(samples, "canary_requests_total", group="stable") == 25
    assert value(samples, "canary_requests_total", group="canary") == 10
    assert value(samples, "canary_requests_total", group="baseline") == 0
    assert value(samples, "canary_responses_total", group="stable", **{"class": "2xx"}) == 20
    assert value(samples, "canary_responses_total", group="stable", **{"class": "4xx"}) == 5
    assert value(samples, "canary_responses_total", group="canary", **{"class": "5xx"}) == 10
    assert value(samples, "canary_errors_total", group="canary") == 10
    assert value(samples, "canary_errors_total", group="stable") == 0
    assert value(samples, "canary_target_response_seconds_count", group="stable") == 25
    assert value(samples, "canary_target_response_seconds_bucket", group="canary", le="+Inf") == 10
    assert 0 < value(samples, "canary_target_response_seconds_sum", group="stable") < 25 * 1.0
    assert value(samples, "canary_weight_ratio", group="stable") == 0
    assert value(samples, "canary_weight_ratio", group="canary") == 1
    assert value(samples, "canary_rejected_requests_total", code="400") == 1
    # No rollout ever ran here.
    assert value(samples, "canary_rollout_active") == 0
    assert "canary_rollout_info" not in types


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


def test_the_loopback_port_serves_the_rollout_state_and_the_judges_e_values(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    port = free_port()
    stack.env["CANARY_METRICS_PORT"] = str(port)
    stack.ok("deploy", "--stable-weight", "100", "--canary-weight", "0")
    url = f"http://127.0.0.1:{port}/metrics"
    assert f"Prometheus metrics on {url}" in stack.ok("status").stdout
    held = ("--steps", "10,50,100", "--min-duration", "60s", "--max-duration", "120s",
            "--interval", "1s", "--no-baseline")  # fmt: skip

    def judged() -> dict[str, Any] | None:
        _, samples = parse(scrape(url)[1])
        key = (("metric", "errors"), ("rollout", "1"), ("test", "harm"))
        return samples if ("canary_judge_e_value", key) in samples else None

    with load(stack, rate=50, seconds=60):  # stopped when the block ends
        stack.ok("rollout", "--detach", *held)
        samples = wait_for(judged, 30, "the judge's first decision on /metrics")
        content_type, _ = scrape(url)
        stack.ok("abort")
    assert content_type.startswith("text/plain; version=0.0.4")
    assert value(samples, "canary_rollout_active") == 1
    assert value(samples, "canary_rollout_info", rollout="1", status="running") == 1
    assert value(samples, "canary_rollout_step", rollout="1") == 1
    assert value(samples, "canary_rollout_steps", rollout="1") == 3
    for test in ("harm", "non_inferiority"):
        e = value(samples, "canary_judge_e_value", rollout="1", metric="errors", test=test)
        threshold = value(
            samples, "canary_judge_e_value_threshold", rollout="1", metric="errors", test=test
        )
        assert e >= 0 and threshold > 1
    assert value(samples, "canary_weight_ratio", group="canary") == 0.1
    types, after = parse(scrape(url)[1])
    assert value(after, "canary_rollout_active") == 0
    assert value(after, "canary_rollout_info", rollout="1", status="rolled_back") == 1
    assert "canary_judge_e_value" not in types
    assert value(after, "canary_weight_ratio", group="canary") == 0
