"""Hand-written fakes of the Protocols the dashboard reads: a MetricsSource with steady
traffic, and a Target whose status is a fixed chain."""

from __future__ import annotations

from collections.abc import Sequence

from canary_deploy.backend import (
    ListenerStatus,
    MetricsSource,
    Role,
    RoleCounts,
    RoleStatus,
    ServiceStatus,
    Status,
    TargetGroupStatus,
    TaskDefinitionStatus,
)
from canary_deploy.weights import Weights


class SteadyMetrics:
    """`rates` requests per second per role, 1 in `error_every` of them an error."""

    def __init__(self, rates: dict[Role, float], error_every: int = 100) -> None:
        self.rates = rates
        self.error_every = error_every
        self.count_calls: list[tuple[float, float]] = []
        self.quantile_calls: list[tuple[Role, float, float]] = []

    def counts(
        self, start: float, end: float, thresholds_s: Sequence[float] = ()
    ) -> dict[Role, RoleCounts]:
        self.count_calls.append((start, end))
        out = {}
        for role, rate in self.rates.items():
            requests = round(rate * (end - start))
            out[role] = RoleCounts(requests, requests // self.error_every)
        return out

    def quantiles(
        self, role: Role, start: float, end: float, qs: Sequence[float]
    ) -> tuple[float | None, ...]:
        self.quantile_calls.append((role, start, end))
        return tuple(0.010 * (1 + q) for q in qs)


def chain_status(weights: Weights = Weights(95, 5)) -> Status:
    def role_status(v: str, image: str, running: int) -> RoleStatus:
        return RoleStatus(
            TaskDefinitionStatus(image),
            ServiceStatus(f"app-{v}", running, 0, running, "COMPLETED"),
            TargetGroupStatus(f"tg-{v}", healthy=running),
        )

    return Status(
        "local",
        "demo",
        "RUNNING",
        ListenerStatus("http://127.0.0.1:8080/", weights),
        {
            "stable": role_status("stable", "app:v1", 2),
            "canary": role_status("canary", "app:v2", 1),
        },
    )


class FakeTarget:
    """A Target for reading only: a fixed chain and steady traffic."""

    name = "local"

    def __init__(self, metrics: MetricsSource, status: Status | None = None) -> None:
        self.metrics = metrics
        self._status = status or chain_status()
        self.status_calls = 0

    def status(self) -> Status:
        self.status_calls += 1
        return self._status
