"""The standalone balancer's `/metrics`: its counters since start, per target group, in
Prometheus text (names `canary_balancer_*`; the local stack's own set, with rollout state
and e-values, is `observability.prometheus`)."""

from __future__ import annotations

from collections.abc import Mapping

from canary_deploy.balancer.metrics import WindowStats, cumulative_buckets, latency_sum
from canary_deploy.observability.exposition import Family, Sample, histogram, render
from canary_deploy.weights import Role

# A response class's label and the WindowStats counter that holds it.
_TARGET_CODES = tuple((f"{n}xx", f"status_{n}xx") for n in (2, 3, 4, 5))
_ELB_CODES = tuple((str(code), f"balancer_{code}") for code in (502, 503, 504))
_REJECTED_HELP = (
    "Requests the balancer answered itself, booked on no target group, by status (400 "
    "invalid, 405 CONNECT, 408 client too slow, 417 Expect, 501 upgrade, 503 connection "
    "cap or exhaustion)."
)


def prometheus_text(totals: Mapping[Role, WindowStats], rejected: Mapping[int, int]) -> str:
    """`totals` (MetricsRecorder.totals: each group since start) and `rejected` (by status)
    as Prometheus text."""
    groups: list[tuple[dict[str, str], WindowStats]] = [
        ({"target_group": role}, stats) for role, stats in totals.items()
    ]
    return render(
        [
            _counter(
                "requests_total",
                "Requests routed to a target group.",
                [Sample(labels, s.requests) for labels, s in groups],
            ),
            _counter(
                "target_responses_total",
                "Responses sent by targets, by class.",
                _by_code(groups, _TARGET_CODES),
            ),
            _counter(
                "elb_errors_total",
                "Errors the balancer itself returned.",
                _by_code(groups, _ELB_CODES),
            ),
            _counter(
                "rejected_requests_total",
                _REJECTED_HELP,
                [Sample({"code": str(status)}, n) for status, n in rejected.items()],
            ),
            Family(
                "canary_balancer_target_response_seconds",
                "histogram",
                "Target response time (bucket resolution 1/16).",
                [
                    sample
                    for labels, s in groups
                    for sample in histogram(
                        labels, cumulative_buckets(s.histogram), latency_sum(s.histogram)
                    )
                ],
            ),
        ]
    )


def _counter(name: str, help_text: str, samples: list[Sample]) -> Family:
    return Family(f"canary_balancer_{name}", "counter", help_text, samples)


def _by_code(
    groups: list[tuple[dict[str, str], WindowStats]], codes: tuple[tuple[str, str], ...]
) -> list[Sample]:
    return [
        Sample({**labels, "code": code}, getattr(stats, attr))
        for labels, stats in groups
        for code, attr in codes
    ]
