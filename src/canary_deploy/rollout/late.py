"""Late datapoints: CloudWatch may still add to a minute after the controller read it.

The controller reads each window once it is `metrics_lag` old and feeds the judge its
counts. With `reread_s > 0` it also reads the last `reread_s` seconds before the new
window again and feeds what arrived since (the re-read minus what the judge already got
for those windows): requests are never lost to a lag that was too short, and none is
counted twice. Counts only grow, so a smaller re-read (a datapoint not visible yet on
one CloudWatch node) adds nothing and takes nothing away.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from canary_deploy.backend import Role, RoleCounts

Counts = Mapping[Role, RoleCounts]


def plus(a: RoleCounts, b: RoleCounts) -> RoleCounts:
    """Two windows' counts together (a missing latency tuple counts as zeros)."""
    n = max(len(a.slower_than), len(b.slower_than))
    sa = a.slower_than or (0,) * n
    sb = b.slower_than or (0,) * n
    return RoleCounts(
        a.requests + b.requests,
        a.errors + b.errors,
        tuple(x + y for x, y in zip(sa, sb, strict=True)),
    )


def arrived_since(now: RoleCounts, fed: RoleCounts) -> RoleCounts:
    """What a re-read shows beyond what was fed, field by field, never negative.

    >>> arrived_since(RoleCounts(120, 4, (9,)), RoleCounts(100, 4, (10,)))
    RoleCounts(requests=20, errors=0, slower_than=(0,))
    """
    n = max(len(now.slower_than), len(fed.slower_than))
    sn = now.slower_than or (0,) * n
    sf = fed.slower_than or (0,) * n
    return RoleCounts(
        max(0, now.requests - fed.requests),
        max(0, now.errors - fed.errors),
        tuple(max(0, x - y) for x, y in zip(sn, sf, strict=True)),
    )


@dataclass(frozen=True)
class FedWindow:
    """One window the judge was fed: its edges and the counts it got for it (first read
    plus everything that arrived late)."""

    start: float
    end: float
    counts: dict[Role, RoleCounts]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "counts": {
                v: [c.requests, c.errors, list(c.slower_than)] for v, c in self.counts.items()
            },
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FedWindow:
        counts = {
            v: RoleCounts(int(r), int(e), tuple(int(x) for x in s))
            for v, (r, e, s) in doc["counts"].items()
        }
        return cls(float(doc["start"]), float(doc["end"]), counts)


def total(windows: Iterable[FedWindow], role: Role) -> RoleCounts:
    out = RoleCounts(0, 0, ())
    for w in windows:
        out = plus(out, w.counts.get(role, RoleCounts(0, 0, ())))
    return out


def late_counts(reread: Counts, fed: Iterable[FedWindow]) -> dict[Role, RoleCounts]:
    """Per group: what the re-read of the fed windows shows beyond what they were fed.

    >>> fed = [FedWindow(0, 60, {"canary": RoleCounts(50, 1, (2,))}),
    ...        FedWindow(60, 120, {"canary": RoleCounts(40, 0, (1,))})]
    >>> late_counts({"canary": RoleCounts(100, 2, (3,))}, fed)["canary"]
    RoleCounts(requests=10, errors=1, slower_than=(0,))
    """
    windows = list(fed)
    return {v: arrived_since(c, total(windows, v)) for v, c in reread.items()}


def span(windows: Iterable[FedWindow]) -> tuple[float, float] | None:
    """The time the fed windows cover (they are contiguous): what a re-read reads."""
    ws = list(windows)
    return (ws[0].start, ws[-1].end) if ws else None


def remember(
    windows: Iterable[FedWindow], late: Counts, new: FedWindow, *, reread_s: float
) -> list[FedWindow]:
    """The windows to re-read next time: the late counts booked to the newest window fed
    so far (never fed again), the new window appended, and only windows that start
    within `reread_s` of the new window's end kept.

    >>> c = {"canary": RoleCounts(10, 0, ())}
    >>> ws = remember([], {}, FedWindow(0, 60, c), reread_s=120)
    >>> ws = remember(ws, {"canary": RoleCounts(5, 1, ())}, FedWindow(60, 120, c), reread_s=120)
    >>> [(w.start, w.counts["canary"].requests) for w in ws]
    [(0, 15), (60, 10)]
    >>> [w.start for w in remember(ws, {}, FedWindow(120, 180, c), reread_s=120)]
    [60, 120]
    """
    kept = list(windows)
    if kept and late:
        newest = kept[-1]
        counts = dict(newest.counts)
        for v, c in late.items():
            counts[v] = plus(counts.get(v, RoleCounts(0, 0, ())), c)
        kept[-1] = FedWindow(newest.start, newest.end, counts)
    kept.append(new)
    return [w for w in kept if w.start >= new.end - reread_s]
