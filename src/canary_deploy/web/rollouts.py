"""What the dashboard shows of rollouts, read from the rollout store: the steps as a
timeline, the current step's gate, each judged metric's e-value path, and the history
rows (outcome, duration, deciding metric)."""

from __future__ import annotations

from dataclasses import dataclass

from canary_deploy.analysis import Decision, Verdict
from canary_deploy.errors import UsageError
from canary_deploy.rollout.model import Event, Rollout, RolloutStatus
from canary_deploy.rollout.reading import step_elapsed
from canary_deploy.rollout.state import RolloutState


@dataclass(frozen=True)
class StepView:
    number: int  # 1-based
    canary_weight: int
    weights: str  # the listener's stable/canary/baseline during the step
    state: str  # done, current, pending
    min_duration_s: float
    max_duration_s: float
    min_requests: int


@dataclass(frozen=True)
class Gate:
    """How far the current step is from opening its gate."""

    elapsed_s: float
    min_duration_s: float
    max_duration_s: float
    canary_requests: int
    min_requests: int

    @property
    def time_ok(self) -> bool:
        return self.elapsed_s >= self.min_duration_s

    @property
    def requests_ok(self) -> bool:
        return self.canary_requests >= self.min_requests


@dataclass(frozen=True)
class EPoint:
    """One judged batch of one metric: seconds since the rollout started, both e-values
    and their thresholds."""

    t: float
    e_harm: float
    harm_threshold: float
    e_non_inferiority: float
    non_inferiority_threshold: float


@dataclass(frozen=True)
class HistoryRow:
    id: int
    started_at: float
    status: str
    duration_s: float | None  # None while it runs
    deciding: str
    canary_image: str | None


def timeline(r: Rollout) -> list[StepView]:
    """Every step, with which are done, which runs and which are to come."""
    views = []
    for i, step in enumerate(r.plan.steps):
        w = r.plan.weights(i)
        if r.status is RolloutStatus.PROMOTED or i < r.step:
            state = "done"
        elif i == r.step and not r.status.terminal:
            state = "current"
        elif i == r.step:
            state = "stopped"  # rolled back here
        else:
            state = "pending"
        views.append(
            StepView(
                i + 1,
                step.canary_weight,
                f"{w.stable}/{w.canary}/{w.baseline}",
                state,
                step.min_duration_s,
                step.max_duration_s,
                step.min_requests,
            )
        )
    return views


def gate(r: Rollout) -> Gate:
    step = r.plan.steps[min(r.step, len(r.plan.steps) - 1)]
    return Gate(
        step_elapsed(r),
        step.min_duration_s,
        step.max_duration_s,
        r.step_canary_requests,
        step.min_requests,
    )


def e_paths(r: Rollout, events: list[Event]) -> dict[str, list[EPoint]]:
    """Per judged metric (by name), its e-values batch after batch."""
    paths: dict[str, list[EPoint]] = {}
    for e in events:
        decision = e.judged()
        if decision is None:
            continue
        for m in decision.metrics:
            paths.setdefault(m.name, []).append(
                EPoint(
                    e.t - r.created_at,
                    m.e_harm,
                    m.harm_threshold,
                    m.e_non_inferiority,
                    m.non_inferiority_threshold,
                )
            )
    return paths


def step_starts(r: Rollout, events: list[Event]) -> list[tuple[float, str]]:
    """(seconds since the start, label) where each step after the first began."""
    return [
        (e.t - r.created_at, f"{e.data['canary_weight']}%")
        for e in events
        if e.kind == "step" and e.data and "canary_weight" in e.data
    ]


def final_decision(events: list[Event]) -> Decision | None:
    """The judge's last decision with a verdict (rollback or promote), if any."""
    for e in reversed(events):
        decision = e.judged() if e.kind == "decision" else None
        if decision is not None and decision.verdict in (Verdict.ROLLBACK, Verdict.PROMOTE):
            return decision
    return None


def deciding(r: Rollout, events: list[Event]) -> str:
    """What ended (or holds) the rollout, in a few words: the metric whose evidence
    decided, or who steered it."""
    if r.status in (RolloutStatus.ROLLED_BACK, RolloutStatus.ROLLING_BACK):
        if r.reason and r.reason.startswith("aborted by"):
            return r.reason
        decision = final_decision(events)
        if decision is not None and decision.verdict is Verdict.ROLLBACK:
            return ", ".join(decision.harmful) or "judge"
        return r.reason or "rolled back"
    if r.status in (RolloutStatus.PROMOTED, RolloutStatus.PROMOTING):
        promoted_by = [e for e in events if e.kind == "promote" and e.actor != "controller"]
        if promoted_by:
            return f"promoted by {promoted_by[-1].actor}"
        return "every step passed"
    return r.reason or "running"


def history_rows(
    store: RolloutState, cache: dict[int, HistoryRow], *, limit: int = 30
) -> list[HistoryRow]:
    """The stack's last rollouts, newest first. Ended ones never change: `cache` keeps
    them, so only a running rollout is read again."""
    latest = store.latest()
    if latest is None:
        return []
    rows = []
    for rollout_id in range(latest.id, max(0, latest.id - limit), -1):
        row = cache.get(rollout_id)
        if row is None:
            row = _row(store, rollout_id)
            if row is None:
                continue
            if row.duration_s is not None:
                cache[rollout_id] = row
        rows.append(row)
    return rows


def _row(store: RolloutState, rollout_id: int) -> HistoryRow | None:
    try:
        r = store.get(rollout_id)
    except UsageError:  # no such id (ids may be shared with other stacks)
        return None
    if r.stack != store.stack:
        return None
    duration = r.updated_at - r.created_at if r.status.terminal else None
    return HistoryRow(
        r.id, r.created_at, str(r.status), duration, deciding(r, store.events(r.id)), r.canary_image
    )
