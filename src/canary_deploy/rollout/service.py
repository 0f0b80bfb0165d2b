"""Rollout use-cases for the CLI: start or resume (scaling a canary a rollback left at 0
tasks back first), run, history. Steering from another terminal: steering.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from canary_deploy.backend import GROUPS, Progress, Role, SilentProgress, Status, Target
from canary_deploy.config import Settings
from canary_deploy.errors import CanaryError, OperationFailed, UsageError
from canary_deploy.rollout.alarms import alarm_source, require_alarms
from canary_deploy.rollout.capacity import arm_needs
from canary_deploy.rollout.controller import Controller, TickResult
from canary_deploy.rollout.hooks import Hooks, any_hook, open_hooks
from canary_deploy.rollout.notify import NotificationPump, Notifier
from canary_deploy.rollout.plan import RolloutPlan, build_plan, load_imbalance
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.state import (
    LeaseLost,
    RenewingProgress,
    RolloutState,
    unattended_since,
)
from canary_deploy.rollout.store import Event, Rollout, RolloutStatus, RolloutStore
from canary_deploy.rollout.summary import ActiveRollout, ControllerSummary, RolloutSummary


class RolloutView(Protocol):
    """Where the runner shows each tick (a live terminal view, plain lines, or nothing)."""

    def show(self, result: TickResult, quantiles: Mapping[str, float | None]) -> None: ...


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
    status = _with_canary_tasks(settings, target, store, progress, notes)
    _prepare_control(plan, target, status, progress, notes)
    # What the canary's tasks run now (after any restart), pinned where the target can:
    # the one image this rollout judges and may promote.
    image = target.workload.canary_image()
    rollout = start_rollout(store, plan, target.metrics, canary_image=image, notes=notes)
    return rollout, False


def _canary_tasks(status: Status) -> int | None:
    """The canary service's desired count; None when the stack has none."""
    canary = status.versions.get("canary")
    return None if canary is None or canary.service is None else canary.service.desired


def _with_canary_tasks(
    settings: Settings, target: Target, store: RolloutState, progress: Progress, notes: list[str]
) -> Status:
    """The stack's status once its canary service has tasks (a canary a rollback scaled
    to 0 is scaled back first, what it says added to `notes`)."""
    status = target.status()
    desired = _canary_tasks(status)
    if desired is None:
        raise UsageError(
            "the stack has no canary service: nothing to roll out",
            hint="deploy the new version first: `canary deploy --image-canary ...`",
        )
    if desired == 0:
        notes += rescale_canary(settings, target, store, progress)
        status = target.status()
    return status


def _prepare_control(
    plan: RolloutPlan, target: Target, status: Status, progress: Progress, notes: list[str]
) -> None:
    """Start the baseline's tasks (and fresh canary tasks with them); without a baseline,
    warn (into `notes` too) when stable's and the canary's tasks would be loaded unevenly."""
    canary_tasks = _canary_tasks(status) or 0
    if plan.baseline:
        try:
            # The baseline gets the canary's size; each target says what it starts.
            target.workload.start_baseline(canary_tasks, progress)
        except BaseException:
            # Ctrl-C or a failure before the rollout exists: nobody would stop these
            # tasks later (its weight is still 0, so stopping is always allowed).
            target.workload.stop_baseline()
            raise
        return
    stable = status.versions.get("stable")
    stable_tasks = stable.service.desired if stable and stable.service else 0
    warning = load_imbalance(plan, stable_tasks, canary_tasks)
    if warning:
        progress.log(f"Warning: {warning}")
        notes.append(warning)


def rescale_canary(
    settings: Settings, target: Target, store: RolloutState, progress: Progress
) -> list[str]:
    """Scale a canary with 0 tasks (a rollback leaves it so) back to the count it had, and
    wait until its tasks are healthy. Returns notes for the new rollout's history."""
    latest = store.latest()
    runs = target.workload.canary_image()
    promoted = latest is not None and latest.status is RolloutStatus.PROMOTED
    if latest is not None and promoted and runs == latest.canary_image:
        raise UsageError(
            f"the canary runs stable's image (rollout #{latest.id} promoted {runs}): "
            "nothing new to roll out",
            hint="deploy the new version first: `canary deploy --image-canary ...`",
        )
    count, why = _count_before(store, latest, settings.desired_count_canary)
    if count < 1:
        raise UsageError(
            "the canary service runs no tasks: nothing to roll out",
            hint="deploy it with tasks: `canary deploy --canary-count 1`",
        )
    progress.log(f"The canary service runs no tasks ({why}): scaling it back to {count} task(s)")
    target.workload.scale_canary(count)
    wait_canary_healthy(target, count, progress)
    notes = [f"canary scaled back to {count} task(s) for this rollout ({why})"]
    rolled_back = latest is not None and latest.status is RolloutStatus.ROLLED_BACK
    if latest is not None and rolled_back and runs is not None and runs == latest.canary_image:
        again = f"rollout #{latest.id} rolled back this image: {latest.reason}"
        progress.log(f"Note: {again}")
        notes.append(again)
    return notes


def _count_before(store: RolloutState, latest: Rollout | None, configured: int) -> tuple[int, str]:
    """How many tasks the canary had before the last rollback scaled it in, and why."""
    if latest is not None and latest.status is RolloutStatus.ROLLED_BACK:
        for event in reversed(store.events(latest.id)):
            before = (
                (event.data or {}).get("canary_count_before")
                if event.kind == "rolled_back"
                else None
            )
            if isinstance(before, int) and before > 0:
                return before, f"rollout #{latest.id} rolled back and scaled it in from {before}"
        return configured, f"rollout #{latest.id} rolled back; DESIRED_COUNT_CANARY is {configured}"
    return configured, f"DESIRED_COUNT_CANARY is {configured}"


def wait_canary_healthy(
    target: Target,
    count: int,
    progress: Progress,
    *,
    timeout_s: float = 600.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Until the canary runs `count` tasks its target group reports healthy (10 min at
    most: a Fargate task pulls its image first); a crash loop fails at once."""
    deadline = clock() + timeout_s
    while True:
        canary = target.status().versions.get("canary")
        service = None if canary is None else canary.service
        group = None if canary is None else canary.target_group
        if service is not None and service.deployment_state == "crash-looping":
            raise OperationFailed(
                f"the canary's tasks crash-loop: {service.message}",
                hint="see `canary status` and the task logs",
            )
        healthy = group.healthy if group is not None else (service.running if service else 0)
        if service is not None and service.running >= count and healthy >= count:
            return
        progress.update(f"scaling the canary back: {healthy}/{count} task(s) healthy")
        if clock() > deadline:
            raise OperationFailed(
                f"the canary did not get {count} healthy task(s) within {timeout_s:.0f}s "
                f"({healthy} healthy)",
                hint="see `canary status`",
            )
        sleep(1.0)


def ensure_baseline(target: Target, rollout: Rollout, progress: Progress) -> None:
    """A resumed rollout's step needs its baseline's tasks when something stopped them
    (a scale-in, a daemon started from a clean spec). At the first step they start with
    fresh canary tasks (same age, as at the start); later the canary's tasks carry a large
    share and are never restarted: the baseline is only scaled to what the step needs (the
    health gate waits for it). A soak step gives the baseline nothing: nothing to do."""
    weights = rollout.plan.weights(rollout.step)
    if not rollout.plan.baseline or rollout.status.ending or weights.baseline == 0:
        return
    status = target.status()

    def desired(role: Role) -> int:
        found = status.versions.get(role)
        return found.service.desired if found is not None and found.service else 0

    have = desired("baseline")
    if rollout.step == 0:
        # As at the start: as many tasks as the canary, started with fresh canary tasks.
        want = desired("canary")
        if want > 0 and have < want:
            progress.log(f"The baseline runs {have} of {want} task(s): starting it again")
            target.workload.start_baseline(want, progress)
        return
    needs = arm_needs([weights], desired("stable"), rollout.plan.max_canary_tasks)
    want = needs.get("baseline", 1)
    if have < want:
        progress.log(
            f"The baseline runs {have} of {want} task(s): starting it again (the canary's "
            "serving tasks are not restarted)"
        )
        target.workload.scale("baseline", want)


# How long a controller whose rollout ended waits for its notifications to be delivered.
NOTIFY_CLOSE_S = 30.0
# How long a controller stopped mid-rollout (Ctrl-C, SIGTERM) waits for the deliveries
# under way, to record them: the controller that takes the rollout up again sends only
# what is not recorded as delivered.
NOTIFY_STOP_S = 2.0


def hooks_for(settings: Settings, target: Target) -> Hooks | None:
    """The rollout's lifecycle hooks (`[rollout.hooks]`), told the listener's URL."""
    hooks = settings.rollout.hooks
    if not any_hook(hooks):
        return None
    url = f"http://{settings.local.listen}"
    if settings.target != "local":
        try:
            listener = target.status().listener
        except CanaryError:
            listener = None
        url = "" if listener is None else listener.url.rstrip("/")
    return open_hooks(hooks, url)


def notifier_for(settings: Settings) -> Notifier | None:
    """The `[[notifications]]` webhooks' sender, or None when there are none."""
    return Notifier(settings.notifications) if settings.notifications else None


# A tick that fails (throttling, a network blip, a stale read) is tried again at the
# next tick; the controller gives up only after failing this long without one success.
GIVE_UP_AFTER_S = 600.0


def run(
    target: Target,
    store: RolloutState,
    rollout: Rollout,
    view: RolloutView,
    *,
    tick_every_s: float | None = None,
    warn: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    hooks: Hooks | None = None,
    notifier: Notifier | None = None,
) -> Rollout:
    """Run the controller (claimed by `begin`) until the rollout ends and its last hooks
    ran; between ticks, hand its new events to the `notifier`.

    A failing tick does not end it: the error is reported (`warn`) and the next tick reads
    the truth again (every tick is idempotent). It stops on a lost lease (another
    controller runs the rollout) or after `GIVE_UP_AFTER_S` of failures in a row.
    (Long for its seams, the injected clock, sleep, hooks and notifier: the loop itself
    is `_loop`.)"""
    controller = Controller(
        target.router,
        target.workload,
        target.metrics,
        store,
        rollout.id,
        clock=clock,
        progress=RenewingProgress(store, rollout.id),
        hooks=hooks,
        alarms=alarm_source(target),
    )
    pump = None if notifier is None else NotificationPump(notifier, store, rollout.id)
    try:
        final = _loop(
            controller,
            target,
            view,
            pump,
            every_s=tick_every_s,
            warn=warn,
            sleep=sleep,
            clock=clock,
        )
        if pump is not None:
            pump.close(NOTIFY_CLOSE_S)
        return final
    except KeyboardInterrupt:
        # Stopped while the rollout goes on: record what was delivered (waiting briefly
        # for what is under way), or a resumed controller would send it again.
        if pump is not None:
            with suppress(CanaryError):
                pump.close(NOTIFY_STOP_S)
        raise
    finally:
        if hooks is not None:
            hooks.close()
        if notifier is not None:
            notifier.close(0)
        store.release(rollout.id)


def _loop(
    controller: Controller,
    target: Target,
    view: RolloutView,
    pump: NotificationPump | None,
    *,
    every_s: float | None,
    warn: Callable[[str], None] | None,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Rollout:
    """Tick until the rollout ended and no hook of it runs any more."""
    rollout = controller.store.get(controller.rollout_id)
    every = every_s if every_s is not None else rollout.plan.tick_s
    quantiles: dict[str, float | None] = {}
    next_quantiles = 0.0
    failing_since: float | None = None
    while True:
        try:
            result = controller.tick()
            if pump is not None:
                pump.after_tick(result.rollout)
        except LeaseLost:
            raise
        except CanaryError as exc:
            failing_since = _failed(exc, failing_since, clock(), warn)
            sleep(every)
            continue
        failing_since = None
        now = clock()
        if now >= next_quantiles:
            quantiles = _p99_or(target, result.rollout, now, quantiles)
            next_quantiles = now + result.rollout.plan.interval_s
        view.show(result, quantiles)
        if result.rollout.status.terminal and not result.hooks_pending:
            return result.rollout
        sleep(every)


def _failed(
    exc: CanaryError, since: float | None, now: float, warn: Callable[[str], None] | None
) -> float:
    """Report a failed tick; raise once ticks have failed for `GIVE_UP_AFTER_S`."""
    since = now if since is None else since
    if now - since >= GIVE_UP_AFTER_S:
        raise OperationFailed(
            f"the rollout's controller stopped: its ticks failed for {now - since:.0f}s "
            f"(last: {exc.message})",
            hint="the rollout keeps its current weights and nothing judges it: fix the "
            "cause and run `canary rollout` to resume, or `canary abort`",
        ) from exc
    if warn is not None:
        warn(f"a controller tick failed, trying again: {exc.message}")
    return since


def _p99_or(
    target: Target, rollout: Rollout, now: float, last: dict[str, float | None]
) -> dict[str, float | None]:
    """The live view's p99s are for the eyes only: a failed read keeps the last ones."""
    try:
        return _p99(target, rollout, now)
    except CanaryError:
        return last


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
    from canary_deploy.rollout.runner import save_settings

    save_settings(settings)
    store.release(rollout.id)
    LocalStack(settings).ensure_running()


# While following: a rollout nobody ticks for this long gets one warning.
UNATTENDED_WARNING_S = 10.0


def follow(
    target: Target,
    store: RolloutState,
    rollout_id: int,
    view: RolloutView,
    *,
    warn: Callable[[str], None],
    every_s: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Rollout:
    """Show a rollout another process runs (the daemon's controller) until it ends."""
    quantiles: dict[str, float | None] = {}
    next_quantiles = 0.0
    warned = False
    while True:
        r = store.get(rollout_id)
        now = clock()
        if now >= next_quantiles and not r.status.terminal:
            quantiles = _p99(target, r, now)
            next_quantiles = now + r.plan.interval_s
        view.show(TickResult(r, target.router.get_weights(), r.last_decision), quantiles)
        if r.status.terminal:
            return r
        since = unattended_since(store, r, now=now)
        if since is not None and now - since > UNATTENDED_WARNING_S and not warned:
            warned = True
            warn(
                f"no controller has ticked rollout #{r.id} for {now - since:.0f}s: is the "
                "local daemon running? (`canary status`; `canary deploy` starts it again)"
            )
        elif since is None:
            warned = False
        sleep(every_s)


def _p99(target: Target, rollout: Rollout, now: float) -> dict[str, float | None]:
    start = rollout.step_started_at
    end = now - rollout.plan.metrics_lag_s
    if end <= start:
        return {}
    out: dict[str, float | None] = {}
    for role in GROUPS if rollout.plan.baseline else GROUPS[:2]:
        (value,) = target.metrics.quantiles(role, start, end, (0.99,))
        out[role] = value
    return out


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
