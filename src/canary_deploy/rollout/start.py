"""Starting a rollout, or taking up the one in progress: the canary's (and the
baseline's) tasks made ready (arms.py), the latency thresholds frozen, what the canary is
compared with said, and the rollout recorded with its plan and judge."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from canary_deploy.analysis import Judge
from canary_deploy.backend import MetricsSource, Progress, SilentProgress, Target
from canary_deploy.config import Settings
from canary_deploy.rollout.alarms import alarm_source, require_alarms
from canary_deploy.rollout.arms import ensure_baseline, prepare_control, with_canary_tasks
from canary_deploy.rollout.plan import MAX_BASELINE_WEIGHT, RolloutPlan, align_to_batches
from canary_deploy.rollout.state import RenewingProgress, RolloutState
from canary_deploy.rollout.store import ACTOR, EventRecord, Rollout


def begin(
    settings: Settings,
    target: Target,
    store: RolloutState,
    plan: RolloutPlan,
    progress: Progress | None = None,
    *,
    claim: bool = True,
) -> tuple[Rollout, bool]:
    """The active rollout to resume, or a new one, claimed for this process (another live
    controller is refused here, before anything is said or done). Returns (rollout, resumed).
    With `claim=False` an active rollout is returned as it is, for watching (the local
    daemon runs it).

    A new rollout with a baseline first starts the baseline's tasks and restarts the
    canary's with them, so both arms are the same age and warm up together. A canary a
    rollback scaled to 0 tasks is scaled back first."""
    progress = progress or SilentProgress()
    active = store.active()
    if active is not None:
        if claim:
            store.claim(active.id, now=time.time())
            ensure_baseline(target, active, RenewingProgress(store, active.id, progress))
        return active, True
    # Before anything starts: a rollout that could not watch its alarms must not begin.
    require_alarms(alarm_source(target), plan.alarms)
    notes: list[str] = []
    status = with_canary_tasks(settings, target, store, progress, notes)
    prepare_control(plan, target, status, progress, notes)
    # What the canary's tasks run now (after any restart), pinned where the target can:
    # the one image this rollout judges and may promote.
    image = target.workload.canary_image()
    rollout = start_rollout(store, plan, target.metrics, canary_image=image, notes=notes)
    return rollout, False


def start_rollout(
    store: RolloutState,
    plan: RolloutPlan,
    metrics: MetricsSource,
    *,
    canary_image: str | None,
    clock: Callable[[], float] = time.time,
    actor: str = "user",
    notes: Sequence[str] = (),
) -> Rollout:
    """Create a rollout, freezing latency thresholds from stable's recent traffic."""
    now = clock()
    judge = Judge(plan.judge)
    note = _freeze_thresholds(plan, judge, metrics, now)
    rollout = store.create(
        plan,
        judge.to_dict(),
        now=align_to_batches(now, plan),
        canary_image=canary_image,
        actor=actor,
    )
    events: list[EventRecord] = []
    if judge.thresholds_s:
        events.append(_thresholds_event(plan, judge))
    events.append(EventRecord("note", ACTOR, comparison_note(plan)))
    events.extend(EventRecord("note", ACTOR, text) for text in notes)
    if note:
        events.append(EventRecord("note", ACTOR, note))
    return store.save(rollout, now=now, events=events)


def _freeze_thresholds(
    plan: RolloutPlan, judge: Judge, metrics: MetricsSource, now: float
) -> str | None:
    """Freeze the latency thresholds from stable's window; a note when latency is off."""
    if plan.judge.latency_thresholds_s is not None:
        return None
    if not plan.judge.latency_quantiles:
        return "latency not judged: latency_quantiles = [] in [rollout.judge]"
    start = now - plan.baseline_window_s
    quantiles = metrics.quantiles("stable", start, now, plan.judge.latency_quantiles)
    if quantiles and all(q is not None and q > 0 for q in quantiles):
        # p95 and p99 can share a histogram bucket: judge each threshold once.
        judge.freeze_thresholds(sorted({q for q in quantiles if q is not None}))
        return None
    return (
        "latency not judged: stable served no traffic in the last "
        f"{plan.baseline_window_s:.0f}s to freeze thresholds from"
    )


def _thresholds_event(plan: RolloutPlan, judge: Judge) -> EventRecord:
    shown = ", ".join(f"{t * 1000:.3g} ms" for t in judge.thresholds_s)
    widened = ", ".join(f"{t * 1000:.3g} ms" for t in judge.canary_thresholds_s)
    source = (
        "fixed by latency_thresholds_s"
        if plan.judge.latency_thresholds_s is not None
        else f"frozen from stable's last {plan.baseline_window_s:.0f}s"
    )
    return EventRecord(
        "thresholds",
        ACTOR,
        f"latency thresholds {shown} ({source}); the canary is counted above "
        f"{widened} (tolerance {plan.judge.latency_tolerance:.0%} + "
        f"{plan.judge.latency_tolerance_ms:g} ms)",
        {
            "thresholds_s": list(judge.thresholds_s),
            "canary_thresholds_s": list(judge.canary_thresholds_s),
        },
    )


def comparison_note(plan: RolloutPlan) -> str:
    """What the judge compares the canary with, as said in `canary history`."""
    if not plan.baseline:
        return (
            "no baseline: the canary is compared with stable's tasks (errors and latency); "
            f"latency not judged for {plan.warmup_s:g}s of warm-up"
        )
    soak = [s.canary_weight for s in plan.steps if s.canary_weight > MAX_BASELINE_WEIGHT]
    text = (
        "baseline: stable's image on as many tasks as the canary, started with them, at the "
        "canary's weight; errors compared with stable+baseline, latency with the baseline "
        f"(not judged for {plan.warmup_s:g}s of warm-up)"
    )
    if soak:
        shown = ", ".join(f"{w}%" for w in soak)
        text += (
            f"; steps above {MAX_BASELINE_WEIGHT}% ({shown}) are soak steps: no baseline "
            "traffic, errors compared with stable, latency not judged"
        )
    return text
