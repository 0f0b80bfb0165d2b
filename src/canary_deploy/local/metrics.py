"""`LocalMetrics`: the `MetricsSource` Protocol over the counts the local balancer records."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from canary_deploy.backend import GROUPS, Version, VersionCounts
from canary_deploy.local.stack import LocalStack


class LocalMetrics:
    """Per-target-group counts and quantiles recorded by the balancer."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def counts(
        self, start: float, end: float, thresholds_s: Sequence[float] = ()
    ) -> dict[Version, VersionCounts]:
        query = {"start": start, "end": end, "thresholds": ",".join(map(str, thresholds_s))}
        doc = self.stack.request("GET", "/counts?" + urlencode(query))
        return {
            v: VersionCounts(int(c["requests"]), int(c["errors"]), tuple(c.get("slower_than", ())))
            for v, c in doc.items()
            if v in GROUPS
        }

    def quantiles(
        self, version: Version, start: float, end: float, qs: Sequence[float]
    ) -> tuple[float | None, ...]:
        query = {"version": version, "start": start, "end": end, "qs": ",".join(map(str, qs))}
        doc = self.stack.request("GET", "/quantiles?" + urlencode(query))
        return tuple(doc["quantiles"])
