"""The listener as the daemon's parts use it: a Protocol the in-process `Balancer` and the
daemon's `RemoteListener` (dataplane_client.py) both satisfy. A leaf of the local
package: the status report, the admin routes and /metrics type against it without
importing the data plane's client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from canary_deploy.backend import MetricsSource, Role
from canary_deploy.balancer import BalancerConfig, TargetHealth
from canary_deploy.balancer.metrics import WindowStats
from canary_deploy.routes import TesterRoute
from canary_deploy.weights import Weights


class ListenerMetrics(MetricsSource, Protocol):
    """The listener's metrics as the daemon uses them: counts and quantiles, the raw
    per-second buckets it persists, and the totals and refusals `/metrics` shows."""

    def export_buckets(self, since: float) -> list[dict[str, Any]]: ...

    def tester_requests(self, start: float, end: float) -> dict[Role, int]:
        """Requests listener rules routed to each group (never in `counts`)."""
        ...

    def totals(self) -> dict[Role, WindowStats]: ...

    def rejections(self) -> dict[str, int]: ...


class Listener(Protocol):
    """The listener's forward action, groups and metrics (the `Balancer` in-process, a
    `RemoteListener` in the daemon)."""

    @property
    def config(self) -> BalancerConfig: ...

    @property
    def metrics(self) -> ListenerMetrics: ...

    @property
    def slow_start_s(self) -> float: ...

    def get_weights(self) -> Weights: ...

    def set_forward(self, weights: Weights, stickiness_s: int | None) -> None: ...

    def set_slow_start(self, seconds: float) -> None: ...

    def target_health(self) -> dict[Role, list[TargetHealth]]: ...

    def get_rules(self) -> Sequence[TesterRoute]: ...

    def set_rules(self, routes: list[TesterRoute]) -> None: ...
