"""The `MetricsSource` Protocol over the counts the local balancer records, read through an
admin API (the daemon's for the CLI, the data plane's for the daemon)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from canary_deploy.backend import GROUPS, Role, RoleCounts
from canary_deploy.local.stack import LocalStack

Request = Callable[[str, str], Any]  # (method, path) -> the JSON answer


class AdminMetrics:
    """Per-target-group counts and quantiles from a balancer's `/counts` and `/quantiles`."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def counts(
        self, start: float, end: float, thresholds_s: Sequence[float] = ()
    ) -> dict[Role, RoleCounts]:
        query = {"start": start, "end": end, "thresholds": ",".join(map(str, thresholds_s))}
        doc = self.request("GET", "/counts?" + urlencode(query))
        return {
            v: RoleCounts(int(c["requests"]), int(c["errors"]), tuple(c.get("slower_than", ())))
            for v, c in doc.items()
            if v in GROUPS
        }

    def quantiles(
        self, role: Role, start: float, end: float, qs: Sequence[float]
    ) -> tuple[float | None, ...]:
        query = {"version": role, "start": start, "end": end, "qs": ",".join(map(str, qs))}
        return tuple(self.request("GET", "/quantiles?" + urlencode(query))["quantiles"])


class LocalMetrics(AdminMetrics):
    """The stack's metrics as the CLI and the rollout read them: through the daemon."""

    def __init__(self, stack: LocalStack) -> None:
        super().__init__(lambda method, path: stack.request(method, path))
        self.stack = stack
