"""What the daemon's `GET /status` reports (listener, target-group health, services, the
last minute's traffic per group, tester routes, where metrics are served), as one typed
document both sides of the socket share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from canary_deploy.backend import (
    GROUPS,
    MetricsSource,
    ReleaseSpec,
    Role,
    ServiceStatus,
    TargetGroupStatus,
    TrafficStatus,
)
from canary_deploy.local.listener import Listener
from canary_deploy.local.store import spec_from_dict, spec_to_dict
from canary_deploy.weights import Weights

TRAFFIC_WINDOW_S = 60  # what `canary status` shows, like a CloudWatch minute


@dataclass(frozen=True)
class DaemonStatus:
    """The daemon's `GET /status`: what it runs and what its balancer sees.

    `to_dict` is the JSON on the wire and `from_dict` reads it back; nobody else builds
    or parses that document. A group the daemon does not report (one from before the
    baseline) is absent from `services`, `target_groups` and `traffic`.

    >>> s = DaemonStatus("http://127.0.0.1:8080", 7, 1.0, Weights(95, 5), None, None, 0.0, "/")
    >>> DaemonStatus.from_dict(s.to_dict()) == s
    True
    """

    url: str
    pid: int
    started: float
    weights: Weights
    stored_weights: Weights | None  # what the state store holds, to show drift
    stickiness_seconds: int | None
    slow_start_seconds: float
    health_check_path: str
    spec: ReleaseSpec | None = None
    services: dict[Role, ServiceStatus] = field(default_factory=dict)
    target_groups: dict[Role, TargetGroupStatus] = field(default_factory=dict)
    traffic: dict[Role, TrafficStatus] = field(default_factory=dict)
    # The tester routes and what they routed (routes_document); None: a daemon without.
    rules: dict[str, Any] | None = None
    # Prometheus on loopback (`[local] metrics_port`): the port asked for, where it is
    # served, or why it is not.
    metrics_port: int | None = None
    metrics_url: str | None = None
    metrics_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "pid": self.pid,
            "started": self.started,
            "weights": self.weights.to_dict(),
            "stored_weights": None
            if self.stored_weights is None
            else self.stored_weights.to_dict(),
            "stickiness_seconds": self.stickiness_seconds,
            "slow_start_seconds": self.slow_start_seconds,
            "health_check_path": self.health_check_path,
            "spec": None if self.spec is None else spec_to_dict(self.spec),
            "services": {v: asdict(s) for v, s in self.services.items()},
            # A group's name is `tg-<group>`: only its tally crosses the socket.
            "target_groups": {v: _tally(tg) for v, tg in self.target_groups.items()},
            "traffic": {v: asdict(t) for v, t in self.traffic.items()},
            "rules": self.rules,
            "metrics_port": self.metrics_port,
            "metrics_url": self.metrics_url,
            "metrics_error": self.metrics_error,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DaemonStatus:
        """The inverse of `to_dict`; groups other than the known ones are ignored."""
        stored = doc.get("stored_weights")
        groups = doc.get("target_groups", {})
        return cls(
            url=doc["url"],
            pid=int(doc["pid"]),
            started=float(doc["started"]),
            weights=Weights.from_dict(doc["weights"]),
            stored_weights=None if stored is None else Weights.from_dict(stored),
            stickiness_seconds=doc.get("stickiness_seconds"),
            slow_start_seconds=float(doc.get("slow_start_seconds") or 0),
            health_check_path=doc["health_check_path"],
            spec=None if doc.get("spec") is None else spec_from_dict(doc["spec"]),
            services={v: ServiceStatus(**doc["services"][v]) for v in _known(doc["services"])},
            target_groups={
                v: TargetGroupStatus(f"tg-{v}", **{k: int(n) for k, n in groups[v].items()})
                for v in _known(groups)
            },
            traffic={v: TrafficStatus(**doc["traffic"][v]) for v in _known(doc["traffic"])},
            rules=doc.get("rules"),
            metrics_port=doc.get("metrics_port"),
            metrics_url=doc.get("metrics_url"),
            metrics_error=doc.get("metrics_error"),
        )


def _tally(tg: TargetGroupStatus) -> dict[str, int]:
    return {
        "healthy": tg.healthy,
        "unhealthy": tg.unhealthy,
        "initial": tg.initial,
        "draining": tg.draining,
    }


def _known(by_group: dict[str, Any]) -> list[Role]:
    return [v for v in GROUPS if v in by_group]


def target_groups(balancer: Listener) -> dict[Role, TargetGroupStatus]:
    """Each group's targets counted by health state, as DescribeTargetHealth shows them."""
    groups: dict[Role, TargetGroupStatus] = {}
    for role, targets in balancer.target_health().items():
        tally = {"healthy": 0, "unhealthy": 0, "initial": 0, "draining": 0}
        for target in targets:
            tally[target.state] = tally.get(target.state, 0) + 1
        groups[role] = TargetGroupStatus(f"tg-{role}", **tally)
    return groups


def traffic(metrics: MetricsSource, now: float) -> dict[Role, TrafficStatus]:
    """Requests, errors and p50/p95/p99 per role over the last minute."""
    start = now - TRAFFIC_WINDOW_S
    counts = metrics.counts(start, now)
    by_group: dict[Role, TrafficStatus] = {}
    for role in GROUPS:
        c = counts.get(role)
        p50, p95, p99 = metrics.quantiles(role, start, now, (0.5, 0.95, 0.99))
        by_group[role] = TrafficStatus(
            window_seconds=TRAFFIC_WINDOW_S,
            requests=0 if c is None else c.requests,
            errors=0 if c is None else c.errors,
            p50_s=p50,
            p95_s=p95,
            p99_s=p99,
        )
    return by_group


def daemon_status(
    balancer: Listener,
    stored_weights: Weights | None,
    *,
    url: str,
    pid: int,
    started: float,
    spec: ReleaseSpec | None,
    services: dict[Role, ServiceStatus],
    now: float,
) -> DaemonStatus:
    """The daemon's report from its balancer (live weights, listener setup, group health,
    traffic, tester routes), the weights its store holds and the services it runs."""
    return DaemonStatus(
        url=url,
        pid=pid,
        started=started,
        weights=balancer.get_weights(),
        stored_weights=stored_weights,
        stickiness_seconds=balancer.config.stickiness_s,
        slow_start_seconds=balancer.slow_start_s,
        health_check_path=balancer.config.health.path,
        spec=spec,
        services=services,
        target_groups=target_groups(balancer),
        traffic=traffic(balancer.metrics, now),
        rules=routes_document(balancer, now),
    )


def routes_document(balancer: Listener, now: float) -> dict[str, Any]:
    """The listener's tester routes and the requests they routed to each group over the
    last minute (tester traffic: never in `traffic`, never judged)."""
    requests = balancer.metrics.tester_requests(now - TRAFFIC_WINDOW_S, now)
    return {
        "window_seconds": TRAFFIC_WINDOW_S,
        "routes": [r.to_dict() for r in balancer.get_rules()],
        "tester_requests": requests,
    }
