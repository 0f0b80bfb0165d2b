"""The rollout use-cases the CLI calls: open the stack's rollout store, start a rollout
or take up the one in progress and watch it until it ends (its controller run here, or
the local daemon's followed), its history, who runs it. Steering from another terminal:
steering.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_deploy.backend import Progress, Target
from canary_deploy.config import Settings
from canary_deploy.errors import UsageError
from canary_deploy.rollout.handover import save_settings
from canary_deploy.rollout.loop import RolloutView, follow, hooks_for, notifier_for, run
from canary_deploy.rollout.plan import RolloutPlan, build_plan
from canary_deploy.rollout.start import begin
from canary_deploy.rollout.state import RolloutState, unattended_since
from canary_deploy.rollout.store import Event, Rollout, RolloutStore
from canary_deploy.rollout.summary import ActiveRollout, ControllerSummary, RolloutSummary


def store_path(settings: Settings) -> Path:
    """Local: the stack's own state db (next to the daemon's state)."""
    return settings.local.state_dir / "state.db"


def open_store(settings: Settings, progress: Progress | None = None) -> RolloutState:
    """Where the stack's rollouts live. Local: the state directory's SQLite db. AWS: the
    DynamoDB table in the stack's account and region (created on first use), so any
    machine with credentials sees, steers and resumes the same rollout."""
    if settings.target == "aws":
        from canary_deploy.aws.state_open import open_state

        return open_state(
            region=settings.aws.region,
            profile=settings.aws.profile,
            stack_name=settings.state_name,
            progress=progress,
        )
    return RolloutStore(store_path(settings), settings.state_name)


@contextmanager
def existing_store(settings: Settings) -> Iterator[RolloutState | None]:
    """The stack's rollout store, or None when no rollout ever ran here (a command that
    only checks for a rollout does not create a store)."""
    store: RolloutState | None
    if settings.target == "aws":
        from canary_deploy.aws.state_open import open_existing_state

        store = open_existing_state(
            region=settings.aws.region, profile=settings.aws.profile, stack_name=settings.state_name
        )
    elif store_path(settings).exists():
        store = open_store(settings)
    else:
        store = None
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def plan_from(
    settings: Settings,
    *,
    steps: Sequence[int] | None,
    overrides: Mapping[str, Any],
    warn: Callable[[str], None] | None = None,
) -> RolloutPlan:
    return build_plan(
        settings.target, settings.rollout, steps=steps, overrides=overrides, warn=warn
    )


def hosted(settings: Settings) -> bool:
    """Whether the controller runs elsewhere than in the `canary rollout` process: the
    local daemon runs it (a rollout outlives its terminal); on AWS the process that runs
    `canary rollout` is the controller (see docs/aws.md for running it unattended)."""
    return settings.target == "local"


def refuse_detach(settings: Settings, detach: bool) -> None:
    """`--detach` needs a controller that outlives this process: the local daemon's."""
    if detach and not hosted(settings):
        raise UsageError(
            "--detach is for the local target: on AWS this process is the rollout's controller",
            hint="run it where it can keep running (CI job, tmux, an ECS task); see docs/aws.md "
            "'Running a rollout unattended'",
        )


@dataclass(frozen=True)
class Started:
    """A rollout `start` began or took up again, and who runs it."""

    rollout: Rollout
    resumed: bool  # it was running already (or paused, or unattended)
    hosted: bool  # the local daemon runs it: this process only watches (`hosted`)


def start(
    settings: Settings,
    target: Target,
    store: RolloutState,
    plan: RolloutPlan,
    progress: Progress | None = None,
) -> Started:
    """Begin a rollout or take up the one in progress (see `begin`); this process claims
    it unless the local daemon runs it (then `hand_over` leaves it to the daemon)."""
    in_daemon = hosted(settings)
    rollout, resumed = begin(settings, target, store, plan, progress, claim=not in_daemon)
    return Started(rollout, resumed, in_daemon)


def watch(
    settings: Settings,
    target: Target,
    store: RolloutState,
    started: Started,
    view: RolloutView,
    *,
    warn: Callable[[str], None],
) -> Rollout:
    """Until the rollout ends: run its controller here (with the settings' hooks and
    notifications), or follow the daemon's (which runs its own)."""
    if started.hosted:
        return follow(target, store, started.rollout.id, view, warn=warn)
    hooks, notifier = hooks_for(settings, target), notifier_for(settings)
    return run(target, store, started.rollout, view, warn=warn, hooks=hooks, notifier=notifier)


def hand_over(settings: Settings, store: RolloutState, rollout: Rollout) -> None:
    """Leave the rollout to the local daemon, which starts its controller within a second
    or two (`local/controller_host.py`); a stack that is not running is started for it."""
    from canary_deploy.local.stack import LocalStack

    save_settings(settings)
    store.release(rollout.id)
    LocalStack(settings).ensure_running()


def history(store: RolloutState, rollout_id: int | None = None) -> list[Event]:
    return store.events(rollout_id)


def active_rollout(settings: Settings, *, now: float | None = None) -> ActiveRollout | None:
    """The rollout in progress on this stack, if any, and who runs it (from the store)."""
    with existing_store(settings) as store:
        active = None if store is None else store.active()
        if store is None or active is None:
            return None
        now = time.time() if now is None else now
        since = unattended_since(store, active, now=now)
    beat = active.heartbeat if active.heartbeat is not None else active.created_at
    controller = ControllerSummary(
        pid=active.owner_pid if since is None else None,
        last_tick=beat,
        last_tick_s=max(0.0, now - beat),
        unattended_since=since,
        unattended_s=None if since is None else max(0.0, now - since),
    )
    return ActiveRollout(RolloutSummary.of(active), controller)
