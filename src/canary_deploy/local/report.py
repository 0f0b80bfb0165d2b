"""What the daemon's `GET /status` reports about the balancer: listener, target-group
health, the last minute's traffic per target group and its tester routes, as JSON-ready
documents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from canary_deploy.backend import GROUPS, MetricsSource
from canary_deploy.weights import Weights

if TYPE_CHECKING:
    from canary_deploy.local.dataplane_client import Listener

TRAFFIC_WINDOW_S = 60  # what `canary status` shows, like a CloudWatch minute


def _weights(w: Weights | None) -> dict[str, int] | None:
    return None if w is None else w.to_dict()


def listener_document(balancer: Listener, stored_weights: Weights | None) -> dict[str, Any]:
    """Live weights (and the stored ones, to show drift), listener setup, group health."""
    groups: dict[str, dict[str, int]] = {}
    for version, targets in balancer.target_health().items():
        tally = {"healthy": 0, "unhealthy": 0, "initial": 0, "draining": 0}
        for target in targets:
            tally[target.state] = tally.get(target.state, 0) + 1
        groups[version] = tally
    return {
        "weights": _weights(balancer.get_weights()),
        "stored_weights": _weights(stored_weights),
        "stickiness_seconds": balancer.config.stickiness_s,
        "slow_start_seconds": balancer.slow_start_s,
        "health_check_path": balancer.config.health.path,
        "target_groups": groups,
    }


def traffic_document(metrics: MetricsSource, now: float) -> dict[str, dict[str, Any]]:
    """Requests, errors and p50/p95/p99 per version over the last minute."""
    start = now - TRAFFIC_WINDOW_S
    counts = metrics.counts(start, now)
    traffic: dict[str, dict[str, Any]] = {}
    for version in GROUPS:
        c = counts.get(version)
        p50, p95, p99 = metrics.quantiles(version, start, now, (0.5, 0.95, 0.99))
        traffic[version] = {
            "window_seconds": TRAFFIC_WINDOW_S,
            "requests": 0 if c is None else c.requests,
            "errors": 0 if c is None else c.errors,
            "p50_s": p50,
            "p95_s": p95,
            "p99_s": p99,
        }
    return traffic


def routes_document(balancer: Listener, now: float) -> dict[str, Any]:
    """The listener's tester routes and the requests they routed to each group over the
    last minute (tester traffic: never in `traffic`, never judged)."""
    requests = balancer.metrics.tester_requests(now - TRAFFIC_WINDOW_S, now)
    return {
        "window_seconds": TRAFFIC_WINDOW_S,
        "routes": [r.to_dict() for r in balancer.get_rules()],
        "tester_requests": requests,
    }
