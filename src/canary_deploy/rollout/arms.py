"""The canary's and the baseline's tasks made ready before a controller ticks, waited
for as long as that takes (unlike capacity.py's health gate, which waits across ticks):
a canary a rollback scaled to 0 scaled back, a new rollout's baseline started with fresh
canary tasks, a resumed rollout's baseline started again."""

from __future__ import annotations

import time
from collections.abc import Callable

from canary_deploy.backend import Progress, Role, Status, Target
from canary_deploy.config import Settings
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.rollout.capacity import arm_needs
from canary_deploy.rollout.plan import RolloutPlan, load_imbalance
from canary_deploy.rollout.state import RolloutState
from canary_deploy.rollout.store import Rollout, RolloutStatus


def _canary_tasks(status: Status) -> int | None:
    """The canary service's desired count; None when the stack has none."""
    canary = status.versions.get("canary")
    return None if canary is None or canary.service is None else canary.service.desired


def with_canary_tasks(
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


def prepare_control(
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
