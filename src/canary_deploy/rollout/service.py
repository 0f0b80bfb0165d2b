"""Rollout use-cases for the CLI: start or resume, steer from another terminal, history."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from canary_deploy.backend import GROUPS, Progress, SilentProgress, Target
from canary_deploy.config import Settings
from canary_deploy.errors import UsageError
from canary_deploy.rollout.controller import Controller, TickResult
from canary_deploy.rollout.plan import RolloutPlan, build_plan, load_imbalance
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.store import Command, Event, Rollout, RolloutStore


class RolloutView(Protocol):
    """Where the runner shows each tick (a live terminal view, plain lines, or nothing)."""

    def show(self, result: TickResult, quantiles: Mapping[str, float | None]) -> None: ...


def store_path(settings: Settings) -> Path:
    """Local: the stack's own state db. AWS: a db under the state dir, keyed by stack."""
    state_dir = settings.local.state_dir
    return state_dir / ("state.db" if settings.target == "local" else "aws-rollouts.db")


def open_store(settings: Settings) -> RolloutStore:
    return RolloutStore(store_path(settings), settings.stack_name)


def plan_from(
    settings: Settings, *, steps: Sequence[int] | None, overrides: Mapping[str, Any]
) -> RolloutPlan:
    return build_plan(settings.target, settings.rollout, steps=steps, overrides=overrides)


def begin(
    settings: Settings,
    target: Target,
    store: RolloutStore,
    plan: RolloutPlan,
    progress: Progress | None = None,
) -> tuple[Rollout, bool]:
    """The active rollout to resume, or a new one, claimed for this process (another live
    controller is refused here, before anything is said or done). Returns (rollout, resumed).

    A new rollout with a baseline first starts the baseline's tasks and restarts the
    canary's with them, so both arms are the same age and warm up together."""
    progress = progress or SilentProgress()
    active = store.active()
    if active is not None:
        store.claim(active.id, now=time.time())
        if active.plan.baseline and not active.status.ending:
            _ensure_baseline(target, progress)
        return active, True
    status = target.status()
    canary = status.versions.get("canary")
    image = None
    if canary is not None and canary.task_definition is not None:
        image = canary.task_definition.image
    if canary is None or canary.service is None or canary.service.desired == 0:
        raise UsageError(
            "the canary service runs no tasks: nothing to roll out",
            hint="deploy the new version first: `canary deploy --image-canary ...`",
        )
    notes: list[str] = []
    if plan.baseline:
        count = canary.service.desired  # each target says what it starts
        try:
            target.workload.start_baseline(count, progress)
        except BaseException:
            # Ctrl-C or a failure before the rollout exists: nobody would stop these
            # tasks later (its weight is still 0, so stopping is always allowed).
            target.workload.stop_baseline()
            raise
    else:
        stable = status.versions.get("stable")
        stable_tasks = stable.service.desired if stable and stable.service else 0
        warning = load_imbalance(plan, stable_tasks, canary.service.desired)
        if warning:
            progress.log(f"Warning: {warning}")
            notes.append(warning)
    rollout = start_rollout(store, plan, target.metrics, canary_image=image, notes=notes)
    return rollout, False


def _ensure_baseline(target: Target, progress: Progress) -> None:
    """A resumed rollout needs its baseline: started again (with the canary's tasks)
    when something stopped it, e.g. a scale-in or a daemon started from a clean spec."""
    status = target.status()
    canary = status.versions.get("canary")
    baseline = status.versions.get("baseline")
    want = canary.service.desired if canary is not None and canary.service is not None else 0
    have = baseline.service.desired if baseline is not None and baseline.service else 0
    if want > 0 and have < want:
        progress.log(f"The baseline runs {have} of {want} task(s): starting it again")
        target.workload.start_baseline(want, progress)


def run(
    target: Target,
    store: RolloutStore,
    rollout: Rollout,
    view: RolloutView,
    *,
    tick_every_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Rollout:
    """Run the controller (claimed by `begin`) until the rollout ends."""
    controller = Controller(
        target.router, target.workload, target.metrics, store, rollout.id, clock=clock
    )
    every = tick_every_s if tick_every_s is not None else min(0.25, rollout.plan.interval_s / 4)
    quantiles: dict[str, float | None] = {}
    next_quantiles = 0.0
    try:
        while True:
            result = controller.tick()
            now = clock()
            if now >= next_quantiles:
                quantiles = _p99(target, result.rollout, now)
                next_quantiles = now + result.rollout.plan.interval_s
            view.show(result, quantiles)
            if result.rollout.status.terminal:
                return result.rollout
            sleep(every)
    finally:
        store.release(rollout.id)


def _p99(target: Target, rollout: Rollout, now: float) -> dict[str, float | None]:
    start = rollout.step_started_at
    end = now - rollout.plan.metrics_lag_s
    if end <= start:
        return {}
    out: dict[str, float | None] = {}
    for version in GROUPS if rollout.plan.baseline else GROUPS[:2]:
        (value,) = target.metrics.quantiles(version, start, end, (0.99,))
        out[version] = value
    return out


def steer(
    target: Target, store: RolloutStore, command: Command, *, actor: str = "user"
) -> TickResult:
    """Send a command to the active rollout. With no live controller, act on it here."""
    active = store.active()
    if active is None:
        latest = store.latest()
        detail = "" if latest is None else f" (the last one, #{latest.id}, is {latest.status})"
        raise UsageError(f"no rollout in progress{detail}", hint="start one with `canary rollout`")
    store.send(active.id, command, actor=actor)
    if store.controller_alive(active, now=time.time()):
        return _await_consumed(target, store, active)
    controller = Controller(target.router, target.workload, target.metrics, store, active.id)
    return controller.tick()


def _await_consumed(target: Target, store: RolloutStore, rollout: Rollout) -> TickResult:
    deadline = time.monotonic() + 10
    while store.pending_commands(rollout.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    current = store.get(rollout.id)
    return TickResult(current, target.router.get_weights(), current.last_decision)


def history(store: RolloutStore, rollout_id: int | None = None) -> list[Event]:
    return store.events(rollout_id)
