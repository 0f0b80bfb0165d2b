# ruff: noqa: RUF002
"""The burst guard: notice when a would-be rollback rests on clustered errors.

The e-process assumes hits are independent given the traffic. One bad task, one
retrying client or one short outage produce many errors at once, which inflates the
evidence far beyond what independent errors would. The guard looks at where the
canary's hits came from; it never makes a rollback *more* likely.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from canary_deploy.analysis.batch import TaskCounts
from canary_deploy.analysis.config import BurstGuardConfig
from canary_deploy.analysis.dispersion import variance_inflation
from canary_deploy.analysis.eprocess import RateRatioEProcess

# Canary tasks tracked at once (tasks restart under new names; the state stays bounded).
MAX_TRACKED_TASKS = 16


def interval_burst(
    config: BurstGuardConfig,
    harm: RateRatioEProcess,
    max_burst_llr: Sequence[float],
    threshold: float,
    burst_hits: int,
) -> str | None:
    """A reason when the harm evidence stands only thanks to one burst interval, else None.

    `max_burst_llr[i]` is the largest contribution any single burst interval (see
    `BurstGuardConfig`) made to grid ratio i; taking it out of every
    ratio is conservative: no single interval can account for more.
    """
    if not config.enabled or not any(v > 0 for v in max_burst_llr):
        return None
    log_threshold = math.log(threshold)
    if harm.log_e_value < log_threshold:
        return None
    without = harm.log_e_value_without([max(v, 0.0) for v in max_burst_llr])
    if without >= log_threshold:
        return None
    return (
        f"one interval with {burst_hits} canary hits carries the evidence: "
        f"without it e={math.exp(without):.3g} (< {threshold:.3g})"
    )


@dataclass
class TaskEvidence:
    """One canary task: what it served, and the harm evidence of the canary without it."""

    without: RateRatioEProcess  # the same test on the canary's counts minus this task's
    requests: int = 0
    errors: int = 0
    others_requests: int = 0  # canary requests of the other tasks while this one was tracked
    stood: bool = False  # the evidence without this task reached the threshold at some look

    def to_dict(self) -> dict[str, Any]:
        return {
            "without": self.without.to_dict(),
            "requests": self.requests,
            "errors": self.errors,
            "others_requests": self.others_requests,
            "stood": self.stood,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TaskEvidence:
        return cls(
            without=RateRatioEProcess.from_dict(doc["without"]),
            requests=int(doc["requests"]),
            errors=int(doc["errors"]),
            others_requests=int(doc["others_requests"]),
            stood=bool(doc["stood"]),
        )


@dataclass
class TaskGuard:
    """Leave-one-task-out evidence: a rollback on errors must stand without any one task.

    Per canary task k the judge runs the error metric's harm e-process on the canary's
    counts *without* task k (θ0 from the remaining canary requests against the control,
    tempered like the full process). If every canary task but one is as good as the
    control — one task may fail arbitrarily, say a burst — the process without that one
    task is a valid e-process, so by Ville it ever reaches 1/α with probability ≤ α.
    Requiring, for every task that served while another task served too, that the
    evidence without it *has stood* (reached the threshold at some look) therefore keeps
    false rollbacks ≤ α under "one task arbitrarily bad, the rest healthy", and holding
    only ever removes rollbacks. The price: a version that is bad on every task must
    also be caught on the other tasks' traffic alone (with 2 equal tasks, half of it).

    A task first seen late starts from the full process's evidence so far (it served
    none of it); per-task counts cover errors only, so latency is not task-guarded.

    >>> g = TaskGuard()
    >>> harm = RateRatioEProcess.new(1.0, (2.0,), (1.0,))
    >>> for _ in range(6):
    ...     g.observe({"a": TaskCounts(50, 5), "b": TaskCounts(50, 0)},
    ...               1900, 19, 100, 5, harm, icc=0.0, threshold=20.0)
    >>> g.suspect(30, 20.0).split(";")[0]
    "task 'a' carries the evidence: without it e=0.0558 (< 20)"
    """

    tasks: dict[str, TaskEvidence] = field(default_factory=dict)

    def observe(
        self,
        tasks: Mapping[str, TaskCounts],
        control_requests: int,
        control_hits: int,
        canary_requests: int,
        canary_hits: int,
        harm: RateRatioEProcess,
        *,
        icc: float,
        threshold: float,
    ) -> None:
        """Add one batch, before `harm` (the full process) is updated with it."""
        for name in tasks:
            if name not in self.tasks:
                self._track(name, harm, keep=tasks.keys())
        log_threshold = math.log(threshold)
        for name, task in self.tasks.items():
            own = tasks.get(name, TaskCounts(0, 0))
            rest_requests = max(canary_requests - own.requests, 0)
            rest_hits = min(max(canary_hits - own.errors, 0), rest_requests)
            total = control_requests + rest_requests
            theta0 = rest_requests / total if total else 0.0
            inflation = variance_inflation(icc, rest_requests, control_requests)
            task.without.update(rest_hits, control_hits, theta0, inflation)
            task.requests += own.requests
            task.errors += own.errors
            task.others_requests += rest_requests
            task.stood = task.stood or task.without.log_e_value >= log_threshold

    def _track(self, name: str, harm: RateRatioEProcess, keep: Collection[str]) -> None:
        evictable = [k for k in self.tasks if k not in keep]
        if len(self.tasks) >= MAX_TRACKED_TASKS and evictable:
            # Drop a task not serving now and least able to hold a rollback: one whose
            # evidence already stood without it, else the one whose removal costs least.
            victim = max(
                evictable,
                key=lambda k: (self.tasks[k].stood, self.tasks[k].without.log_e_value),
            )
            del self.tasks[victim]
        elif len(self.tasks) >= MAX_TRACKED_TASKS:
            return  # more tasks serving at once than tracked: the newcomer goes unguarded
        without = RateRatioEProcess.from_dict(harm.to_dict())  # it served none of it
        self.tasks[name] = TaskEvidence(without=without)

    def suspect(self, canary_hits: int, threshold: float) -> str | None:
        """A reason when the evidence has not yet stood without some task, else None.

        Only a task that served while other canary tasks served too can be blamed: with
        a single canary task a burst and a bad version look the same.
        """
        open_ = {
            name: t
            for name, t in self.tasks.items()
            if t.requests > 0 and t.others_requests > 0 and not t.stood
        }
        if not open_:
            return None
        name, worst = min(open_.items(), key=lambda item: item[1].without.log_e_value)
        served = worst.requests + worst.others_requests
        return (
            f"task {name!r} carries the evidence: without it "
            f"e={worst.without.e_value:.3g} (< {threshold:.3g}); it produced {worst.errors} "
            f"of the canary's {canary_hits} errors with {worst.requests / served:.0%} of "
            f"its requests"
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: t.to_dict() for name, t in self.tasks.items()}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TaskGuard:
        # A state from before this guard kept [requests, errors] per task: nothing to
        # continue from, so those tasks are tracked afresh from their next batch.
        return cls(
            {name: TaskEvidence.from_dict(t) for name, t in doc.items() if isinstance(t, dict)}
        )
