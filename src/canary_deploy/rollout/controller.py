"""The rollout controller: an idempotent `tick()` that reads the truth, decides, acts,
records. A controller killed at any point and started again continues where it was."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from canary_deploy.analysis import Batch, Decision, Judge, Verdict, VersionBatch
from canary_deploy.backend import (
    MetricsSource,
    Progress,
    SilentProgress,
    TrafficRouter,
    VersionCounts,
    Workload,
)
from canary_deploy.rollout.model import ACTOR, Command, EventRecord, Rollout, RolloutStatus
from canary_deploy.rollout.outcomes import Endings, image_changed
from canary_deploy.rollout.ownership import watch_weights, weights_event
from canary_deploy.rollout.plan import MAX_BASELINE_WEIGHT, align_to_batches
from canary_deploy.rollout.state import RolloutState
from canary_deploy.weights import STABLE_ONLY, Weights


@dataclass(frozen=True)
class TickResult:
    """What one tick saw and did, for the live view."""

    rollout: Rollout
    live_weights: Weights
    decision: dict[str, Any] | None
    rollback_latency_s: float | None = None  # verdict -> 100/0 in effect, when it happened


def _harm_held(decision: dict[str, Any] | None) -> str:
    """The metrics whose harm e-value reached its threshold without a rollback (the burst
    guard held it back), as text; "" when there are none."""
    metrics = (decision or {}).get("metrics") or []
    return ", ".join(m["name"] for m in metrics if m["e_harm"] >= m["harm_threshold"])


def _warm_from(r: Rollout) -> float:
    """When the rollout's tasks became healthy, at the latest: `created_at` is aligned
    down to the batch edge, so add one edge's width (a warm-up is never shorter)."""
    return r.created_at + (60.0 if r.plan.interval_s >= 60 else 1.0)


class Controller:
    """Drives one rollout. Every method that acts first reads the live weights."""

    def __init__(
        self,
        router: TrafficRouter,
        workload: Workload,
        metrics: MetricsSource,
        store: RolloutState,
        rollout_id: int,
        *,
        clock: Callable[[], float] = time.time,
        progress: Progress | None = None,
    ) -> None:
        self.router = router
        self.workload = workload
        self.metrics = metrics
        self.store = store
        self.rollout_id = rollout_id
        self.clock = clock
        self.progress = progress or SilentProgress()
        self.endings = Endings(router, workload, store, self.progress, clock)
        self._decided_at: float | None = None

    def tick(self) -> TickResult:
        """Read the truth (live weights, stored state, commands), decide, act, record."""
        now = self.clock()
        r = self.store.get(self.rollout_id)
        live = self.router.get_weights()
        if r.status.terminal:
            return TickResult(r, live, r.last_decision)
        events: list[EventRecord] = []
        # Whose weights are live, before any command: a `resume` read in this same tick
        # is then the operator's decision on top of what they saw.
        r = watch_weights(r, live, events)
        consumed: list[int] = []
        judge = Judge.from_dict(r.judge)
        for command_id, command, actor in self.store.pending_commands(r.id):
            r = self._apply_command(r, judge, command, actor, now, events)
            consumed.append(command_id)

        decision: Decision | None = None
        if r.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED):
            r, decision = self._analyse(r, judge, now, events)
        if decision is not None and decision.verdict is Verdict.ROLLBACK:
            r = replace(r, status=RolloutStatus.ROLLING_BACK, reason=decision.explanation)
            events.append(("rollback", ACTOR, f"judge: {decision.explanation}", None))
        r = replace(r, judge=judge.to_dict())
        if r.status is RolloutStatus.RUNNING:
            r = self._advance(r, judge, now, events)
        # Record the intent first, then act: a crash in between re-runs the (idempotent)
        # action after reading the live weights, and never loses it.
        r = self.store.save(r, now=now, events=events, consumed=consumed)
        if r.status is RolloutStatus.ROLLING_BACK:
            t0 = self._decided_at if decision is not None else None
            r, latency = self.endings.roll_back(r, live, t0)
            return TickResult(r, STABLE_ONLY, r.last_decision, latency)
        if r.status is RolloutStatus.PROMOTING:
            r = self.endings.promote(r, live)
            return TickResult(r, STABLE_ONLY if r.status.terminal else live, r.last_decision)
        if r.status is RolloutStatus.RUNNING:
            r, live = self._hold(r, live, now)
        return TickResult(r, live, r.last_decision)

    def _hold(self, r: Rollout, live: Weights, now: float) -> tuple[Rollout, Weights]:
        """Put the step's weights on the listener (`watch_weights` has made sure the live
        ones are the controller's own), then record them as applied."""
        want = r.plan.weights(r.step)
        if live == want and r.applied_weights == want:
            return r, live
        events: list[EventRecord] = []
        if live != want:
            self.router.set_weights(want)
            events.append(weights_event(live, want, f"step {r.step + 1}"))
        r = self.store.save(replace(r, applied_weights=want), now=now, events=events)
        return r, want

    # ---- steps

    def _apply_command(
        self,
        r: Rollout,
        judge: Judge,
        command: Command,
        actor: str,
        now: float,
        events: list[EventRecord],
    ) -> Rollout:
        if command is Command.ABORT:
            events.append(("abort", actor, "abort requested: rolling back", None))
            return replace(r, status=RolloutStatus.ROLLING_BACK, reason=f"aborted by {actor}")
        if command is Command.PAUSE:
            if r.status is RolloutStatus.RUNNING:
                events.append(("paused", actor, "paused; analysis and auto-rollback go on", None))
                return replace(r, status=RolloutStatus.PAUSED, reason=f"paused by {actor}")
            return r
        if command is Command.RESUME:
            if r.status is RolloutStatus.PAUSED:
                judge.next_stage()
                events.append(("resumed", actor, f"resumed at step {r.step + 1}", None))
                return replace(r, status=RolloutStatus.RUNNING, reason=None, step_started_at=now)
            return r
        if command is Command.PROMOTE_FULL:
            events.append(("promote", actor, "full promotion requested: skipping all steps", None))
            return replace(r, status=RolloutStatus.PROMOTING, reason=f"promoted by {actor}")
        # PROMOTE: the next step now, whatever the gate says.
        events.append(("promote", actor, f"step {r.step + 1} ended by {actor}", None))
        return self._next_step(replace(r, status=RolloutStatus.RUNNING), judge, now, events)

    def _next_step(
        self, r: Rollout, judge: Judge, now: float, events: list[EventRecord]
    ) -> Rollout:
        if r.step + 1 >= len(r.plan.steps):
            events.append(("step", ACTOR, "last step passed: promoting the canary", None))
            return replace(r, status=RolloutStatus.PROMOTING)
        why = image_changed(r, self.workload.canary_image())
        if why is not None:
            # More traffic for an image nobody judged: never (the promotion checks too).
            events.append(("paused", ACTOR, why, None))
            return replace(r, status=RolloutStatus.PAUSED, reason=why)
        judge.next_stage()
        step = r.plan.steps[r.step + 1]
        message = f"step {r.step + 2}/{len(r.plan.steps)}: canary {step.canary_weight}%"
        if r.plan.baseline and step.canary_weight > MAX_BASELINE_WEIGHT:
            message += " (soak step: no baseline traffic, latency not judged)"
        events.append(
            (
                "step",
                ACTOR,
                message,
                {"step": r.step + 1, "canary_weight": step.canary_weight},
            )
        )
        return replace(r, step=r.step + 1, step_started_at=now, step_canary_requests=0)

    def _analyse(
        self, r: Rollout, judge: Judge, now: float, events: list[EventRecord]
    ) -> tuple[Rollout, Decision | None]:
        """Feed the judge every complete interval since the cursor."""
        end = align_to_batches(now - r.plan.metrics_lag_s, r.plan)
        if end - r.cursor < r.plan.interval_s:
            return r, None
        batch = self._batch(r, judge, end)
        before = judge.verdict
        decision = judge.update(batch)
        self._decided_at = time.perf_counter()
        doc = decision.to_dict()
        doc["window"] = [r.cursor, end]
        doc["step"] = r.step
        if decision.verdict is not before or decision.verdict is not Verdict.CONTINUE:
            kind = "decision"
        else:
            kind = "batch"
        events.append((kind, "judge", decision.explanation, doc))
        return (
            replace(
                r,
                cursor=end,
                step_canary_requests=r.step_canary_requests + batch.canary.requests,
                last_decision=doc,
            ),
            decision,
        )

    def _batch(self, r: Rollout, judge: Judge, end: float) -> Batch:
        """One interval's counts: the controls against the frozen thresholds, the canary
        against the tolerance-widened ones."""
        control_t = judge.thresholds_s
        canary_t = judge.canary_thresholds_s
        counts = self.metrics.counts(r.cursor, end, control_t)
        canary = (
            counts["canary"]
            if canary_t == control_t
            else self.metrics.counts(r.cursor, end, canary_t)["canary"]
        )
        groups = {"stable": counts["stable"], "canary": canary}
        if r.plan.baseline:
            groups["baseline"] = counts.get("baseline", VersionCounts(0, 0, ()))
        warming = r.cursor < _warm_from(r) + r.plan.warmup_s
        settling = r.cursor < r.step_started_at + r.plan.latency_settle_s
        batches = {
            name: VersionBatch(c.requests, c.errors, c.slower_than or tuple(0 for _ in control_t))
            for name, c in groups.items()
        }
        return Batch(
            stable=batches["stable"],
            canary=batches["canary"],
            baseline=batches.get("baseline"),
            # Warm-up, or just after a weight change: no latency evidence either way
            # (decided by the clock alone; errors still count).
            latency_judged=not (warming or settling),
        )

    def _advance(self, r: Rollout, judge: Judge, now: float, events: list[EventRecord]) -> Rollout:
        """Move on when the step's gate opens (the listener call comes after the record)."""
        step = r.plan.steps[r.step]
        elapsed = now - r.step_started_at
        verdict = judge.verdict
        gate = elapsed >= step.min_duration_s and r.step_canary_requests >= step.min_requests
        held = _harm_held(r.last_decision)
        if gate and verdict is Verdict.PROMOTE and not held:
            r = self._next_step(r, judge, now, events)
        elif elapsed >= step.max_duration_s:
            why = None
            if held:
                # Evidence of harm the burst guard holds back is never a pass.
                why = f"evidence of harm held back as a possible burst ({held})"
            elif verdict is Verdict.INCONCLUSIVE:
                why = str((r.last_decision or {}).get("explanation", "inconclusive"))
            elif r.step_canary_requests < step.min_requests:
                why = f"only {r.step_canary_requests} of {step.min_requests} canary requests"
            if why is not None:
                events.append(
                    (
                        "paused",
                        ACTOR,
                        f"step {r.step + 1} ended inconclusive: {why}; run "
                        "`canary promote` to go on or `canary abort` to roll back",
                        None,
                    )
                )
                return replace(r, status=RolloutStatus.PAUSED, reason=f"inconclusive: {why}")
            r = self._next_step(r, judge, now, events)
        return r
