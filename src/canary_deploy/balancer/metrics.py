"""Per-target-group request metrics in 1-second buckets with log-linear latency histograms.

Requests a listener rule routed (tester traffic, see canary_deploy.routes) are booked on
their group's tester booking (`tester/canary`, ...): `window` reads them, and `counts`
(what the judge reads) never does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from canary_deploy.backend import GROUPS, Role, RoleCounts
from canary_deploy.routes import BOOKINGS, TESTER_OF, Booking

# Histogram buckets: 1 microsecond wide below 32 us, then 16 equal buckets per power of
# two (relative width <= 1/16), so quantiles are within ~3% and "slower than T" is
# exact whenever T is a bucket edge.
_SUB = 16
DEFAULT_RETENTION_S = 3600
PROM_EDGES_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# What the balancer answers by itself without booking the request on any target group (a
# closed set): invalid or ambiguous requests (400), CONNECT (405), a client too slow to
# send its request (408), an unsupported Expect (417), upgrades (501), and its own limits
# or exhaustion: the connection cap, no file descriptor for a target connection (503).
REJECTION_STATUSES = (400, 405, 408, 417, 501, 503)


def bucket_index(latency_s: float) -> int:
    """The histogram bucket of a latency (the reference for the copy in record_response).

    >>> bucket_index(0.000_010), bucket_index(0.000_032), bucket_index(0.000_064)
    (10, 32, 48)
    """
    us = int(latency_s * 1_000_000)
    if us < 2 * _SUB:
        return max(us, 0)
    shift = us.bit_length() - 5
    return _SUB * shift + (us >> shift)


def bucket_bounds(index: int) -> tuple[float, float]:
    """[lower, upper) of a bucket, in seconds.

    >>> bucket_bounds(48)
    (6.4e-05, 6.8e-05)
    """
    if index < 2 * _SUB:
        return index / 1e6, (index + 1) / 1e6
    shift = index // _SUB - 1
    mantissa = index % _SUB + _SUB
    return (mantissa << shift) / 1e6, ((mantissa + 1) << shift) / 1e6


def cumulative_buckets(
    histogram: Mapping[int, int], edges_s: Sequence[float] = PROM_EDGES_S
) -> list[tuple[float, int]]:
    """Prometheus's cumulative `le` buckets of a histogram (+Inf last): a bucket counts
    below an edge when it starts below it (within the buckets' 1/16 resolution).

    >>> cumulative_buckets({bucket_index(0.0004): 2, bucket_index(0.003): 1}, (0.001,))
    [(0.001, 2), (inf, 3)]
    """
    return [
        (edge, sum(n for i, n in histogram.items() if bucket_bounds(i)[0] < edge))
        for edge in (*edges_s, float("inf"))
    ]


def latency_sum(histogram: Mapping[int, int]) -> float:
    """The sum of the latencies, each taken at its bucket's midpoint (within 1/32).

    >>> round(latency_sum({bucket_index(0.000_010): 3}), 7)
    3.15e-05
    """
    total = 0.0  # (a float from the start: compiled, sum() of a generator starts an int)
    for index, n in histogram.items():
        low, high = bucket_bounds(index)
        total += n * (low + high) / 2
    return total


class _Cell:
    """What one target group served in one second."""

    __slots__ = (
        "balancer_502",
        "balancer_503",
        "balancer_504",
        "hist",
        "requests",
        "status_2xx",
        "status_3xx",
        "status_4xx",
        "status_5xx",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.status_2xx = self.status_3xx = self.status_4xx = self.status_5xx = 0
        self.balancer_502 = self.balancer_503 = self.balancer_504 = 0
        self.hist: dict[int, int] = {}

    def add(self, other: _Cell) -> None:
        self.requests += other.requests
        self.status_2xx += other.status_2xx
        self.status_3xx += other.status_3xx
        self.status_4xx += other.status_4xx
        self.status_5xx += other.status_5xx
        self.balancer_502 += other.balancer_502
        self.balancer_503 += other.balancer_503
        self.balancer_504 += other.balancer_504
        for index, n in other.hist.items():
            self.hist[index] = self.hist.get(index, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "2xx": self.status_2xx,
            "3xx": self.status_3xx,
            "4xx": self.status_4xx,
            "5xx": self.status_5xx,
            "balancer_502": self.balancer_502,
            "balancer_503": self.balancer_503,
            "balancer_504": self.balancer_504,
            "hist": {str(i): n for i, n in self.hist.items()},
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> _Cell:
        cell = cls()
        cell.requests = int(doc["requests"])
        cell.status_2xx, cell.status_3xx, cell.status_4xx, cell.status_5xx = (
            int(doc[k]) for k in ("2xx", "3xx", "4xx", "5xx")
        )
        cell.balancer_502 = int(doc["balancer_502"])
        cell.balancer_503 = int(doc["balancer_503"])
        cell.balancer_504 = int(doc["balancer_504"])
        cell.hist = {int(i): int(n) for i, n in doc.get("hist", {}).items()}
        return cell


@dataclass(frozen=True)
class WindowStats:
    """What one target group served in a window; latencies are target response times."""

    requests: int = 0
    status_2xx: int = 0
    status_3xx: int = 0
    status_4xx: int = 0
    status_5xx: int = 0  # sent by targets
    balancer_502: int = 0
    balancer_503: int = 0
    balancer_504: int = 0
    histogram: dict[int, int] = field(default_factory=dict)  # bucket index -> count

    @property
    def balancer_errors(self) -> int:
        return self.balancer_502 + self.balancer_503 + self.balancer_504

    @property
    def errors(self) -> int:
        """Target 5xx plus the balancer's own 502/503/504 for this group."""
        return self.status_5xx + self.balancer_errors

    def slower_than(self, threshold_s: float) -> int:
        """Requests whose latency bucket starts at or above the threshold."""
        return sum(n for i, n in self.histogram.items() if bucket_bounds(i)[0] >= threshold_s)

    def quantile(self, q: float) -> float | None:
        """The latency at quantile q (bucket midpoint), None without data."""
        total = sum(self.histogram.values())
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for index in sorted(self.histogram):
            seen += self.histogram[index]
            if seen >= rank:
                low, high = bucket_bounds(index)
                return (low + high) / 2
        low, high = bucket_bounds(max(self.histogram))
        return (low + high) / 2


class MetricsRecorder:
    """Records every response per target group without logging; answers any window."""

    def __init__(self, retention_s: int = DEFAULT_RETENTION_S) -> None:
        self.retention_s = retention_s
        # By status; never booked on a group, so never evidence against a version.
        self.rejected = dict.fromkeys(REJECTION_STATUSES, 0)
        self._seconds: dict[int, dict[Booking, _Cell]] = {}
        self._totals: dict[Booking, _Cell] = {b: _Cell() for b in BOOKINGS}
        self._second = -1
        self._current: dict[Booking, _Cell] = {}

    @property
    def rejected_400(self) -> int:
        """Requests refused with 400 (see `rejected` for every status)."""
        return self.rejected[400]

    def reject(self, status: int) -> None:
        """A request answered with `status` by the balancer itself, on no target group."""
        self.rejected[status] += 1

    def rejections(self) -> dict[str, int]:
        """The JSON form of `rejected`: {"400": n, "405": n, ...}."""
        return {str(status): n for status, n in self.rejected.items()}

    # ---- hot path

    def _cell(self, booking: Booking) -> _Cell:
        now = int(time.time())
        if now != self._second:
            self._roll(now)
        cell = self._current.get(booking)
        if cell is None:
            cell = self._current[booking] = _Cell()
        return cell

    def record_response(self, booking: Booking, status: int, latency_s: float) -> None:
        """A response from a target (any status) and its target response time."""
        cell = self._current.get(booking)
        if cell is None or int(time.time()) != self._second:
            cell = self._cell(booking)  # (a new second, or the group's first response in it)
        cell.requests += 1
        if status < 300:
            cell.status_2xx += status >= 200
        elif status < 400:
            cell.status_3xx += 1
        elif status < 500:
            cell.status_4xx += 1
        else:
            cell.status_5xx += 1
        # bucket_index(), inlined: this runs once per proxied request. A differential
        # test (tests/balancer/test_metrics.py) holds the two to the same answers.
        us = int(latency_s * 1_000_000)
        if us < 2 * _SUB:
            index = max(us, 0)
        else:
            shift = us.bit_length() - 5
            index = _SUB * shift + (us >> shift)
        hist = cell.hist
        hist[index] = hist.get(index, 0) + 1

    def record_balancer_error(self, booking: Booking, status: int) -> None:
        """A 502/503/504 the balancer generated for a request routed to this group."""
        cell = self._cell(booking)
        cell.requests += 1
        if status == 502:
            cell.balancer_502 += 1
        elif status == 503:
            cell.balancer_503 += 1
        else:
            cell.balancer_504 += 1

    def _roll(self, now: int) -> None:
        for booking, cell in self._current.items():
            self._totals[booking].add(cell)
        self._current = self._seconds.setdefault(now, {})
        self._second = now
        oldest = now - self.retention_s
        if self._seconds and min(self._seconds) < oldest:
            for second in [s for s in self._seconds if s < oldest]:
                del self._seconds[second]

    # ---- queries

    def window(self, booking: Booking, start: float, end: float) -> WindowStats:
        """Sum of the 1-second buckets that overlap [start, end)."""
        total = _Cell()
        for second, cells in list(self._seconds.items()):
            if second + 1 > start and second < end:
                cell = cells.get(booking)
                if cell is not None:
                    total.add(cell)
        return _stats(total)

    def totals(self) -> dict[Role, WindowStats]:
        """What each group served since this recorder started (the current second too):
        counters that only grow, as Prometheus expects them."""
        return {role: _stats(cell) for role, cell in self._since_start().items()}

    def counts(
        self, start: float, end: float, thresholds_s: Sequence[float] = ()
    ) -> dict[Role, RoleCounts]:
        """Requests, errors and latency exceedances per group (MetricsSource contract)."""
        out: dict[Role, RoleCounts] = {}
        for role in GROUPS:
            stats = self.window(role, start, end)
            out[role] = RoleCounts(
                requests=stats.requests,
                errors=stats.errors,
                slower_than=tuple(stats.slower_than(t) for t in thresholds_s),
            )
        return out

    def quantiles(
        self, role: Role, start: float, end: float, qs: Sequence[float]
    ) -> tuple[float | None, ...]:
        stats = self.window(role, start, end)
        return tuple(stats.quantile(q) for q in qs)

    def tester_requests(self, start: float, end: float) -> dict[Role, int]:
        """Requests listener rules routed to each group in [start, end) (not in `counts`)."""
        return {v: self.window(TESTER_OF[v], start, end).requests for v in GROUPS}

    # ---- export

    def _since_start(self) -> dict[Role, _Cell]:
        """Each group's totals, the current second included."""
        cells: dict[Role, _Cell] = {}
        for role in GROUPS:
            cell = cells[role] = _Cell()
            cell.add(self._totals[role])
            current = self._current.get(role)
            if current is not None:
                cell.add(current)
        return cells

    def export_buckets(self, since: float) -> list[dict[str, Any]]:
        """JSON-able 1-second buckets from `since` on, for the daemon to persist."""
        out = []
        for second in sorted(self._seconds):
            if second + 1 <= since:
                continue
            for booking, cell in self._seconds[second].items():
                out.append({"t": second, "version": booking, **cell.to_dict()})
        return out

    def import_buckets(self, buckets: list[dict[str, Any]]) -> None:
        """Restore persisted buckets (after a restart); a restored second replaces ours."""
        for doc in buckets:
            booking = doc["version"]
            if booking not in BOOKINGS:
                continue
            second = int(doc["t"])
            self._seconds.setdefault(second, {})[booking] = _Cell.from_dict(doc)


def _stats(cell: _Cell) -> WindowStats:
    return WindowStats(
        requests=cell.requests,
        status_2xx=cell.status_2xx,
        status_3xx=cell.status_3xx,
        status_4xx=cell.status_4xx,
        status_5xx=cell.status_5xx,
        balancer_502=cell.balancer_502,
        balancer_503=cell.balancer_503,
        balancer_504=cell.balancer_504,
        histogram=cell.hist,
    )
