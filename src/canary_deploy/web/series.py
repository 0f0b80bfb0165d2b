"""The last 15 minutes of traffic per role, in buckets read from a MetricsSource: what
the dashboard's charts draw (request rate, error rate, p50/p95/p99)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from canary_deploy.backend import MetricsSource, Role

QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Point:
    """What one role served in one bucket."""

    start: float
    seconds: float
    requests: int
    errors: int
    quantiles_s: tuple[float | None, ...] = (None, None, None)

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


class TrafficSeries:
    """Buckets of `bucket_s` seconds over the last `window_s`, ending `lag_s` before now
    (CloudWatch's newest minutes are still filling up). A bucket once complete is read
    once; the one still filling is read again at each refresh when `partial` is on."""

    def __init__(
        self,
        metrics: MetricsSource,
        *,
        bucket_s: float,
        lag_s: float,
        window_s: float = 900.0,
        partial: bool = True,
        max_reads: int = 30,
    ) -> None:
        self.metrics = metrics
        self.bucket_s = bucket_s
        self.lag_s = lag_s
        self.window_s = window_s
        self.partial = partial
        # Buckets read per refresh at most: the newest first, the past fills in after.
        self.max_reads = max_reads
        self._done: dict[float, dict[Role, Point]] = {}
        self._filling: dict[Role, Point] = {}

    def refresh(self, now: float) -> None:
        """Read the buckets not read yet (newest first) and the one still filling."""
        end = now - self.lag_s
        edge = math.floor(end / self.bucket_s) * self.bucket_s
        first = edge - self.window_s
        for start in list(self._done):
            if start < first:
                del self._done[start]
        missing = []
        start = edge - self.bucket_s
        while start >= first:
            if start not in self._done:
                missing.append(start)
            start -= self.bucket_s
        for start in missing[: self.max_reads]:
            self._done[start] = self._read(start, start + self.bucket_s)
        self._filling = self._read(edge, end) if self.partial and end - edge >= 1.0 else {}

    def _read(self, start: float, end: float) -> dict[Role, Point]:
        counts = self.metrics.counts(start, end)
        points: dict[Role, Point] = {}
        for role, c in counts.items():
            qs: tuple[float | None, ...] = (None,) * len(QUANTILES)
            if c.requests:
                qs = self.metrics.quantiles(role, start, end, QUANTILES)
            points[role] = Point(start, end - start, c.requests, c.errors, qs)
        return points

    def points(self, role: Role) -> list[Point]:
        """Oldest first; the bucket still filling last."""
        out = [self._done[s][role] for s in sorted(self._done) if role in self._done[s]]
        if role in self._filling:
            out.append(self._filling[role])
        return out

    def roles(self) -> list[Role]:
        """The roles that served anything in the window, in the dashboard's order."""
        seen = {v for bucket in self._done.values() for v, p in bucket.items() if p.requests}
        seen |= {v for v, p in self._filling.items() if p.requests}
        return [v for v in ("stable", "canary", "baseline") if v in seen]
