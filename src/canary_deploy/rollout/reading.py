"""Feeding the judge at each batch: the new window's counts plus what arrived late for
the windows already fed (late.py), which step the batch belongs to, and the judge's
decision recorded.

A batch belongs to the step whose weights produced it, by time: batch edges are whole
seconds (whole minutes on CloudWatch), the first edge at or after the moment a step's
weights were applied starts that step's data, and a batch never spans that edge. A batch
from before it still feeds the judge (the harm side runs over the whole rollout) but does
not count toward the step's `min_requests`, and a step's durations are measured on the
data it produced (the cursor), not on the wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from canary_deploy.analysis import Batch, Decision, Judge, RoleBatch, Verdict
from canary_deploy.backend import MetricsSource, Role, RoleCounts
from canary_deploy.rollout.late import FedWindow, late_counts, plus, remember, span
from canary_deploy.rollout.model import ACTOR, EventRecord, RecordedDecision, Rollout
from canary_deploy.rollout.plan import RolloutPlan, align_to_batches

NOTHING = RoleCounts(0, 0, ())


def align_up(t: float, plan: RolloutPlan) -> float:
    """The first batch edge at or after `t`."""
    width = 60.0 if plan.interval_s >= 60 else 1.0
    return math.ceil(t / width) * width


def step_edge(r: Rollout) -> float | None:
    """Where the step's own data starts; None while its weights are not on the listener
    (the step waits for healthy targets: nothing is its data yet)."""
    if r.applied_weights != r.plan.weights(r.step):
        return None
    return align_up(r.step_started_at, r.plan)


def step_elapsed(r: Rollout) -> float:
    """How long the step has run, measured on the data it produced."""
    return max(0.0, r.cursor - r.step_started_at)


def batch_end(r: Rollout, now: float) -> float | None:
    """The end of the next batch to feed, None until a whole interval is complete. A
    batch stops at the step's edge (then it may be shorter than an interval)."""
    end = align_to_batches(now - r.plan.metrics_lag_s, r.plan)
    edge = step_edge(r)
    if edge is not None and r.cursor < edge < end:
        return edge
    return end if end - r.cursor >= r.plan.interval_s else None


@dataclass(frozen=True)
class Read:
    """One batch for the judge, the windows to re-read next time, and how many canary
    requests of it count toward the current step."""

    batch: Batch
    fed_windows: tuple[FedWindow, ...]
    step_canary_requests: int
    start: float  # where the batch's data starts: the cursor, or the re-read windows'


def read_batch(
    metrics: MetricsSource, r: Rollout, judge: Judge, end: float, warm_from: float
) -> Read:
    """The counts of [cursor, end) plus what arrived late for the fed windows: the
    controls against the frozen thresholds, the canary against the tolerance-widened
    ones, both in one read."""
    control_t = judge.thresholds_s
    canary_t = judge.canary_thresholds_s
    asked = control_t if canary_t == control_t else control_t + canary_t
    new = metrics.counts(r.cursor, end, asked)
    plan = r.plan
    fed = r.fed_windows if plan.reread_s > 0 else ()
    covered = span(fed)
    late: dict[Role, RoleCounts] = {}
    if covered is not None:
        late = late_counts(metrics.counts(covered[0], covered[1], asked), fed)
    window = FedWindow(r.cursor, end, dict(new))
    kept = tuple(remember(fed, late, window, reread_s=plan.reread_s)) if plan.reread_s else ()
    edge = step_edge(r)
    own = 0
    if edge is not None and r.cursor >= edge:
        own += new.get("canary", NOTHING).requests
    if edge is not None and covered is not None and covered[0] >= edge:
        own += late.get("canary", NOTHING).requests
    first = covered[0] if covered is not None else r.cursor
    batch = _batch(r, new, late, len(control_t), canary_t != control_t)
    # Warm-up, or the batch reaches into the moments after a weight change: no latency
    # evidence either way (decided by the clock alone; errors still count).
    warming = first < warm_from + plan.warmup_s
    settling = first < r.step_started_at + plan.latency_settle_s and end > r.step_started_at
    if warming or settling:
        batch = Batch(batch.stable, batch.canary, batch.baseline, latency_judged=False)
    return Read(batch, kept, own, first)


def _batch(
    r: Rollout,
    new: Mapping[Role, RoleCounts],
    late: Mapping[Role, RoleCounts],
    n: int,
    widened: bool,
) -> Batch:
    groups: tuple[Role, ...] = (
        ("stable", "canary", "baseline")
        if r.plan.baseline
        else (
            "stable",
            "canary",
        )
    )
    batches: dict[Role, RoleBatch] = {}
    for v in groups:
        c = plus(new.get(v, NOTHING), late.get(v, NOTHING))
        slower = c.slower_than or (0,) * (2 * n if widened else n)
        # Each arm against its own thresholds: the canary's widened ones when they differ.
        mine = slower[n:] if widened and v == "canary" else slower[:n]
        # Late datapoints of one metric may arrive before another's: never more errors or
        # slow requests than requests.
        batches[v] = RoleBatch(
            c.requests, min(c.errors, c.requests), tuple(min(x, c.requests) for x in mine)
        )
    return Batch(
        stable=batches["stable"], canary=batches["canary"], baseline=batches.get("baseline")
    )


def feed_judge(
    metrics: MetricsSource, r: Rollout, judge: Judge, now: float, events: list[EventRecord]
) -> tuple[Rollout, Decision | None]:
    """Feed the judge every complete interval since the cursor (and what arrived late
    for the intervals before it), its decision recorded in `events`; None when it got no
    batch (none complete yet, or one with nothing to compare)."""
    end = batch_end(r, now)
    if end is None:
        return r, None
    if r.cursor == step_edge(r):
        # The step's own data starts: it shows non-inferiority on that alone.
        judge.next_stage()
    read = read_batch(metrics, r, judge, end, _warm_from(r))
    window = [r.cursor, end]
    r = replace(
        r,
        cursor=end,
        step_canary_requests=r.step_canary_requests + read.step_canary_requests,
        fed_windows=read.fed_windows,
    )
    if _nothing_to_compare(read.batch):
        # No evidence either way (no control served a request), and it would count
        # toward the judge's cap: a soak (100%) is judged by its own duration.
        c = read.batch.canary
        message = (
            f"soak: the canary served {c.requests} requests ({c.errors} errors); nothing "
            "to compare them with (no stable or baseline traffic)"
        )
        data = {"window": window, "step": r.step, "canary": c.to_dict()}
        events.append(EventRecord("batch", ACTOR, message, data))
        return r, None
    before = judge.verdict
    decision = judge.update(read.batch)
    reread_from = read.start if read.start < window[0] else None
    recorded = RecordedDecision(decision, (window[0], window[1]), r.step, reread_from)
    if decision.verdict is not before or decision.verdict is not Verdict.CONTINUE:
        kind = "decision"
    else:
        kind = "batch"
    events.append(EventRecord(kind, "judge", decision.explanation, recorded.to_dict()))
    return replace(r, last_decision=recorded), decision


def _warm_from(r: Rollout) -> float:
    """When the rollout's tasks became healthy, at the latest: `created_at` is aligned
    down to the batch edge, so add one edge's width (a warm-up is never shorter)."""
    return r.created_at + (60.0 if r.plan.interval_s >= 60 else 1.0)


def _nothing_to_compare(batch: Batch) -> bool:
    """A batch the canary served alone (a 100% step): no evidence either way."""
    controls = batch.stable.requests + (batch.baseline.requests if batch.baseline else 0)
    return controls == 0 and batch.canary.requests > 0
