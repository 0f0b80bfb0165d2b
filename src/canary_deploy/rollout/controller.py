"""The rollout controller: an idempotent `tick()` that reads the truth, decides, acts,
records. A controller killed at any point and started again continues where it was."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from canary_deploy.analysis import Decision, Judge, Verdict
from canary_deploy.backend import MetricsSource, Progress, SilentProgress, TrafficRouter, Workload
from canary_deploy.rollout.alarms import AlarmSource, watch_alarms
from canary_deploy.rollout.capacity import Capacity, raises_share
from canary_deploy.rollout.hooks import Hooks
from canary_deploy.rollout.model import (
    ACTOR,
    Command,
    Event,
    EventRecord,
    RecordedDecision,
    Rollout,
    RolloutStatus,
)
from canary_deploy.rollout.outcomes import Endings, image_changed
from canary_deploy.rollout.ownership import change_weights, watch_weights
from canary_deploy.rollout.plan import MAX_BASELINE_WEIGHT
from canary_deploy.rollout.reading import feed_judge, step_edge, step_elapsed
from canary_deploy.rollout.state import RolloutState
from canary_deploy.weights import STABLE_ONLY, Weights


@dataclass(frozen=True)
class TickResult:
    """What one tick saw and did, for the live view."""

    rollout: Rollout
    live_weights: Weights
    decision: RecordedDecision | None
    rollback_latency_s: float | None = None  # verdict -> 100/0 in effect, when it happened
    hooks_pending: bool = False  # an ended rollout's hooks still run: tick again


def _harm_held(recorded: RecordedDecision | None) -> str:
    """The metrics whose harm e-value reached its threshold without a rollback (the burst
    guard held it back), as text; "" when there are none."""
    return "" if recorded is None else ", ".join(recorded.decision.harmful)


def _soak(r: Rollout) -> bool:
    """Whether the step gives no control (stable, baseline) any traffic."""
    w = r.plan.weights(r.step)
    return w.stable == 0 and w.baseline == 0


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
        timer: Callable[[], float] = time.perf_counter,
        progress: Progress | None = None,
        hooks: Hooks | None = None,
        alarms: AlarmSource | None = None,
    ) -> None:
        """`clock` is wall time (batches, steps, the store); `timer` measures how long a
        rollback takes from its verdict to 100/0; `hooks` run around steps (hooks.py);
        `alarms` reads the alarms the plan watches (`[rollout] alarms`, AWS)."""
        self.router = router
        self.workload = workload
        self.metrics = metrics
        self.store = store
        self.rollout_id = rollout_id
        self.clock = clock
        self.timer = timer
        self.progress = progress or SilentProgress()
        self.hooks = hooks
        self.alarms = alarms
        self.endings = Endings(router, workload, store, self.progress, clock, timer)
        self.capacity = Capacity(workload)
        self._decided_at: float | None = None
        # The weights whose targets this tick found healthy (read once per tick).
        self._ready_for: Weights | None = None

    def tick(self) -> TickResult:
        """Read the truth (live weights, stored state, commands), decide, act, record."""
        now = self.clock()
        self._ready_for = None
        r = self.store.get(self.rollout_id)
        live = self.router.get_weights()
        if r.status.terminal:
            r, pending = self._finish(r, live)
            return TickResult(r, live, r.last_decision, hooks_pending=pending)
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
            r = watch_alarms(self.alarms, r, events)
        if r.status in (RolloutStatus.RUNNING, RolloutStatus.PAUSED):
            r, decision = self._analyse(r, judge, now, events)
        if decision is not None and decision.verdict is Verdict.ROLLBACK:
            r = replace(r, status=RolloutStatus.ROLLING_BACK, reason=decision.explanation)
            events.append(EventRecord("rollback", ACTOR, f"judge: {decision.explanation}"))
        r = replace(r, judge=judge.to_dict())
        if r.status is RolloutStatus.RUNNING:
            r = self._advance(r, judge, now, events)
        if self.hooks is not None:
            self.hooks.collect(events)
        # Record the intent first, then act: a crash in between re-runs the (idempotent)
        # action after reading the live weights, and never loses it.
        r = self.store.save(r, now=now, events=events, consumed=consumed)
        if r.status is RolloutStatus.RUNNING:
            # A gate hook that fails here pauses the rollout or rolls it back.
            r, live = self._hold(r, live, now)
        if r.status is RolloutStatus.ROLLING_BACK:
            t0 = self._decided_at if decision is not None else None
            r, latency = self.endings.roll_back(r, live, t0)
            r, pending = self._finish(r, STABLE_ONLY)
            return TickResult(r, STABLE_ONLY, r.last_decision, latency, pending)
        if r.status is RolloutStatus.PROMOTING:
            r = self.endings.promote(r, live)
            if r.status.terminal:
                r, pending = self._finish(r, STABLE_ONLY)
                return TickResult(r, STABLE_ONLY, r.last_decision, hooks_pending=pending)
        return TickResult(r, live, r.last_decision)

    def _finish(self, r: Rollout, live: Weights) -> tuple[Rollout, bool]:
        """An ended rollout's hooks (on_rollback, post_rollout), recorded as they end:
        they start only once the rollout's last listener call is done. True while one
        still runs."""
        if self.hooks is None:
            return r, False
        events: list[EventRecord] = []
        pending = self.hooks.finish(r, live, events)
        if events:
            r = self.store.save(r, now=self.clock(), events=events)
        return r, pending

    def _hold(self, r: Rollout, live: Weights, now: float) -> tuple[Rollout, Weights]:
        """Put the step's weights on the listener (`watch_weights` has made sure the live
        ones are the controller's own) once the arms they raise have healthy targets, then
        record them as applied: the step's data starts there."""
        want = r.plan.weights(r.step)
        if live == want and r.applied_weights == want:
            return r, live
        events: list[EventRecord] = []
        if live != want and raises_share(live, want) and self._ready_for != want:
            what = f"canary {want.canary}%"
            r, ready = self.capacity.ready(
                r, (want,), target=r.step, what=what, now=now, events=events
            )
            if not ready:
                return self.store.save(r, now=now, events=events), live
        if r.applied_weights != want:
            r, open_ = self._step_gates(r, live, events)
            # Recorded before the listener call: a gate that passed never runs again.
            r = self.store.save(r, now=now, events=events) if events else r
            events = []
            if not open_:
                return r, live
        if live != want:
            events.append(change_weights(self.router, live, want, f"step {r.step + 1}"))
            r = replace(r, step_started_at=now)
        r = self.store.save(replace(r, applied_weights=want), now=now, events=events)
        return r, want

    # ---- hooks

    def _step_gates(
        self, r: Rollout, live: Weights, events: list[EventRecord]
    ) -> tuple[Rollout, bool]:
        """`pre_rollout` and `pre_step` before a step's weights go on (`Hooks.step_gates`)."""
        if self.hooks is None:
            return r, True
        return self.hooks.step_gates(r, live, self._history, events)

    def _promote_gate(self, r: Rollout, events: list[EventRecord]) -> Rollout | None:
        """`pre_promote` before the promotion: None once it passed (`Hooks.promote_gate`)."""
        return None if self.hooks is None else self.hooks.promote_gate(r, self._history, events)

    def _history(self) -> list[Event]:
        return self.store.events(self.rollout_id)

    def _post_step(self, r: Rollout) -> None:
        if self.hooks is not None:
            self.hooks.fire("post_step", r, r.applied_weights or r.plan.weights(r.step))

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
        if r.status.ending:
            # Rolling back or promoting: nothing sent after it changes that (an abort
            # taken in this same tick wins over a promote sent after it), and a promotion
            # that has started cannot be rolled back by the listener alone.
            events.append(
                EventRecord(
                    "ignored", actor, f"`{command}` ignored: the rollout is {r.status}", None
                )
            )
            return r
        if command is Command.ABORT:
            events.append(EventRecord("abort", actor, "abort requested: rolling back"))
            return replace(r, status=RolloutStatus.ROLLING_BACK, reason=f"aborted by {actor}")
        if command is Command.PAUSE:
            if r.status is RolloutStatus.RUNNING:
                events.append(
                    EventRecord("paused", actor, "paused; analysis and auto-rollback go on")
                )
                return replace(r, status=RolloutStatus.PAUSED, reason=f"paused by {actor}")
            return r
        if command is Command.RESUME:
            if r.status is RolloutStatus.PAUSED:
                judge.next_stage()
                events.append(EventRecord("resumed", actor, f"resumed at step {r.step + 1}"))
                return replace(
                    r,
                    status=RolloutStatus.RUNNING,
                    reason=None,
                    step_started_at=now,
                    health_wait_since=None,
                )
            return r
        if command is Command.PROMOTE_FULL:
            events.append(
                EventRecord("promote", actor, "full promotion requested: skipping all steps")
            )
            return replace(r, status=RolloutStatus.PROMOTING, reason=f"promoted by {actor}")
        # PROMOTE: the next step now, whatever the gate (and the pre_promote hook) says.
        events.append(EventRecord("promote", actor, f"step {r.step + 1} ended by {actor}"))
        running = replace(r, status=RolloutStatus.RUNNING)
        return self._next_step(running, judge, now, events, gated=False)

    def _next_step(
        self,
        r: Rollout,
        judge: Judge,
        now: float,
        events: list[EventRecord],
        *,
        gated: bool = True,
    ) -> Rollout:
        """The step passed: on to the next one, or to the promotion once the last one
        passed (and, unless a human promotes, the pre_promote hook)."""
        if r.step + 1 >= len(r.plan.steps):
            held = self._promote_gate(r, events) if gated else None
            if held is not None:
                return held
            self._post_step(r)
            events.append(EventRecord("step", ACTOR, "last step passed: promoting the canary"))
            return replace(r, status=RolloutStatus.PROMOTING)
        why = image_changed(r, self.workload.canary_image())
        if why is not None:
            # More traffic for an image nobody judged: never (the promotion checks too).
            events.append(EventRecord("paused", ACTOR, why))
            return replace(r, status=RolloutStatus.PAUSED, reason=why)
        self._post_step(r)
        judge.next_stage()
        step = r.plan.steps[r.step + 1]
        message = f"step {r.step + 2}/{len(r.plan.steps)}: canary {step.canary_weight}%"
        if r.plan.baseline and step.canary_weight > MAX_BASELINE_WEIGHT:
            message += " (soak step: no baseline traffic, latency not judged)"
        events.append(
            EventRecord(
                "step",
                ACTOR,
                message,
                {"step": r.step + 1, "canary_weight": step.canary_weight},
            )
        )
        # Until its weights are on the listener (`_hold`), the step has no data of its own.
        return replace(
            r, step=r.step + 1, step_started_at=now, step_canary_requests=0, health_wait_since=None
        )

    def _analyse(
        self, r: Rollout, judge: Judge, now: float, events: list[EventRecord]
    ) -> tuple[Rollout, Decision | None]:
        """Feed the judge the batches now complete (`feed_judge`); the time of its decision
        is where a rollback's latency starts."""
        r, decision = feed_judge(self.metrics, r, judge, now, events)
        if decision is not None:
            self._decided_at = self.timer()
        return r, decision

    def _advance(self, r: Rollout, judge: Judge, now: float, events: list[EventRecord]) -> Rollout:
        """Move on when the step's gate opens (the listener call comes after the record).
        A step whose weights are not on yet has no gate to open: `_hold` puts them on."""
        if step_edge(r) is None:
            return r
        step = r.plan.steps[r.step]
        elapsed = step_elapsed(r)
        verdict = judge.verdict
        gate = elapsed >= step.min_duration_s and r.step_canary_requests >= step.min_requests
        held = _harm_held(r.last_decision)
        # A soak (nothing to compare with: 100%) passes on its own duration, unless the
        # judge found harm; anything else on the judge's word. (A batch that still mixes
        # in the step before's traffic may make the soak's stage hit the judge's cap.)
        soak = _soak(r)
        passed = verdict is Verdict.PROMOTE or (soak and verdict is not Verdict.ROLLBACK)
        if gate and passed and not held:
            return self._open_gate(r, judge, now, events)
        if elapsed < step.max_duration_s:
            return r
        why = None
        if held:
            # Evidence of harm the burst guard holds back is never a pass.
            why = f"evidence of harm held back as a possible burst ({held})"
        elif verdict is Verdict.INCONCLUSIVE and not soak:
            why = "inconclusive" if r.last_decision is None else r.last_decision.explanation
        elif r.step_canary_requests < step.min_requests:
            why = f"only {r.step_canary_requests} of {step.min_requests} canary requests"
        if why is None:
            return self._open_gate(r, judge, now, events)
        events.append(
            EventRecord(
                "paused",
                ACTOR,
                f"step {r.step + 1} ended inconclusive: {why}; run "
                "`canary promote` to go on or `canary abort` to roll back",
                None,
            )
        )
        return replace(r, status=RolloutStatus.PAUSED, reason=f"inconclusive: {why}")

    def _open_gate(
        self, r: Rollout, judge: Judge, now: float, events: list[EventRecord]
    ) -> Rollout:
        """The next step (or the promotion) once the canary and baseline have the healthy
        targets the step's share and the next one's need: scaled first, waited for across
        ticks."""
        splits = [r.plan.weights(r.step)]
        last = r.step + 1 >= len(r.plan.steps)
        if not last:
            splits.append(r.plan.weights(r.step + 1))
        what = "promotion" if last else f"canary {splits[-1].canary}%"
        target = r.step if last else r.step + 1
        r, ready = self.capacity.ready(r, splits, target=target, what=what, now=now, events=events)
        if not ready:
            return r
        failing = self._soak_failing(r)
        if failing is not None:
            events.append(EventRecord("paused", ACTOR, f"{failing}; `canary abort` rolls back"))
            return replace(r, status=RolloutStatus.PAUSED, reason=failing)
        self._ready_for = splits[-1]
        return self._next_step(r, judge, now, events)

    def _soak_failing(self, r: Rollout) -> str | None:
        """Why a soak step must not pass: its canary failed as often as the judge never
        promotes (`max_error_rate_to_promote`), with nothing to compare it with. One read
        of the step's own data, at the step's end only."""
        edge = step_edge(r)
        if not _soak(r) or edge is None or r.cursor <= edge:
            return None
        c = self.metrics.counts(edge, r.cursor).get("canary")
        limit = r.plan.judge.max_error_rate_to_promote
        if c is None or not c.requests or c.errors / c.requests < limit:
            return None
        return (
            f"step {r.step + 1}: the canary failed {c.errors / c.requests:.0%} of its "
            f"{c.requests} requests at {r.plan.weights(r.step).canary}% (nothing to compare "
            f"it with; never passed at {limit:.0%} or more)"
        )
