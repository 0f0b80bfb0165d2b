"""Steering a rollout from any terminal: each command returns only once its change is in
effect, or fails and says why (never left pending to fire later); and the seed's verbs
that touch the weights yield to a rollout, which owns them while it runs."""

from __future__ import annotations

import contextlib
import getpass
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from canary_deploy.backend import Progress, SilentProgress, Target
from canary_deploy.errors import CanaryError, OperationFailed, UsageError
from canary_deploy.rollout.alarms import alarm_source
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.model import Command, EventRecord, Rollout, RolloutStatus
from canary_deploy.rollout.state import RenewingProgress, RolloutState
from canary_deploy.rollout.summary import RolloutSummary
from canary_deploy.weights import STABLE_ONLY, Weights

S = RolloutStatus
_VERB = {
    Command.ABORT: "abort",
    Command.PAUSE: "pause",
    Command.RESUME: "resume",
    Command.PROMOTE: "promote",
    Command.PROMOTE_FULL: "promote --full",
}


@dataclass(frozen=True)
class Deadlines:
    consume_s: float = 15.0  # a live controller takes a command within this (it ticks 4/s)
    effect_s: float = 60.0  # then the change is in effect within this
    promotion_s: float = 3600.0  # unless it promotes: stable's tasks roll (ECS: minutes)
    capacity_s: float = 900.0  # or waits for a step's new tasks to be healthy
    poll_s: float = 0.1


@dataclass(frozen=True)
class Steered:
    """A command in effect: the rollout and the live weights as they are now."""

    command: Command
    actor: str
    rollout: Rollout
    weights: Weights
    acted_by: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": str(self.command),
            "actor": self.actor,
            "acted_by": self.acted_by,
            "notes": list(self.notes),
            "rollout": RolloutSummary.of(self.rollout).to_dict(),
            "weights": self.weights.to_dict(),
        }


def operator(via: str | None = None) -> str:
    """Who sends a command, for the audit log: the OS user, and the verb when it is not a
    steering command itself (e.g. "alice (rollback)")."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    return f"{user} ({via})" if via else user


def steer(
    target: Target,
    store: RolloutState,
    command: Command,
    *,
    actor: str,
    progress: Progress | None = None,
    deadlines: Deadlines = Deadlines(),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Steered:
    """Send `command` to the active rollout and return once it is in effect. A live
    controller carries it out; with none (or one that dies meanwhile) this process does.
    A live controller that does not take it in time: withdrawn, OperationFailed."""
    progress = progress or SilentProgress()
    before = _active(store)
    already = _already(before, command)
    _refuse_too_late(store, before, command)
    courier = _Courier(target, store, before.id, progress, deadlines, sleep, clock)
    acted_by = f"no command sent: the rollout was already {before.status}"
    if not already:
        command_id = store.send(before.id, command, actor=actor)
        try:
            acted_by = courier.deliver(command_id, command)
        except BaseException as exc:
            # Failed here (an AWS error, Ctrl-C): never left pending to fire later.
            why = getattr(exc, "message", None) or type(exc).__name__
            courier.withdraw_quietly(command_id, f"the {_VERB[command]} failed: {why}")
            raise
    r, live = courier.await_effect(command, before)
    notes = [f"already {before.status}"] if already else []
    if not r.status.terminal and not store.controller_alive(r, now=time.time()):
        notes.append("no controller runs this rollout now: `canary rollout` resumes running it")
    return Steered(command, actor, r, live, acted_by, tuple(notes))


def _active(store: RolloutState) -> Rollout:
    active = store.active()
    if active is None:
        latest = store.latest()
        detail = "" if latest is None else f" (the last one, #{latest.id}, is {latest.status})"
        raise UsageError(f"no rollout in progress{detail}", hint="start one with `canary rollout`")
    return active


def _already(r: Rollout, command: Command) -> bool:
    """The command's change is already there or under way: send nothing, wait for it."""
    return (
        (command is Command.PAUSE and r.status is S.PAUSED)
        or (command is Command.RESUME and r.status is S.RUNNING)
        or (command is Command.ABORT and r.status is S.ROLLING_BACK)
        or (command in (Command.PROMOTE, Command.PROMOTE_FULL) and r.status is S.PROMOTING)
    )


def _refuse_too_late(store: RolloutState, r: Rollout, command: Command) -> None:
    """Commands a rollout in its status can no longer carry out (nothing is sent)."""
    ending = r.status in (S.ROLLING_BACK, S.PROMOTING)
    if command is Command.ABORT:
        # A promotion is past the point of abort, carried out now or left unfinished by a
        # controller that died: stable may already run the judged image, so 100/0 would
        # not roll anything back (and the history would say it did).
        if r.status is S.PROMOTING:
            running = "" if store.controller_alive(r, now=time.time()) else " (left unfinished)"
            raise UsageError(
                f"rollout #{r.id} is promoting{running}: too late to abort (stable is taking "
                f"{r.canary_image})",
                hint="`canary rollout` finishes the promotion; then `canary deploy` the "
                "previous image to go back",
            )
        return
    if ending and not _already(r, command):
        raise UsageError(
            f"rollout #{r.id} is {r.status}: too late to {_VERB[command]}",
            hint="watch it with `canary status`",
        )


class _Courier:
    """Gets one command to the rollout's controller - or acts as one - and waits."""

    def __init__(
        self,
        target: Target,
        store: RolloutState,
        rollout_id: int,
        progress: Progress,
        deadlines: Deadlines,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.target = target
        self.store = store
        self.rollout_id = rollout_id
        self.progress = progress
        self.deadlines = deadlines
        self.sleep = sleep
        self.clock = clock

    def deliver(self, command_id: int, command: Command) -> str:
        """Who carried the command out; raises once it is withdrawn."""
        verb = _VERB[command]
        deadline = self.clock() + self.deadlines.consume_s
        while True:
            pending = {cid for cid, _, _ in self.store.pending_commands(self.rollout_id)}
            r = self.store.get(self.rollout_id)
            if command_id not in pending:
                return f"controller (pid {r.owner_pid})"
            if r.status.terminal:
                self._withdraw(command_id, f"rollout #{r.id} ended {r.status} first")
                raise OperationFailed(
                    f"rollout #{r.id} ended {r.status} before the {verb} took effect",
                    hint="see `canary history`",
                )
            if not self.store.controller_alive(r, now=time.time()) and self.tick_here():
                return "this command (no controller was running)"
            if self.clock() >= deadline:
                why = (
                    f"the rollout's controller (pid {r.owner_pid}) did not take the {verb} "
                    f"within {self.deadlines.consume_s:g}s"
                )
                if self._withdraw(command_id, why):
                    raise OperationFailed(
                        f"{why}: nothing changed, and the {verb} was withdrawn (it will not "
                        "fire later)",
                        hint=f"is it stuck? `kill {r.owner_pid}`, then run `canary {verb}` "
                        "again: with no controller running, the command acts itself",
                    )
                continue  # taken at the last moment
            self.progress.update(f"waiting for the rollout's controller to take the {verb}")
            self.sleep(self.deadlines.poll_s)

    def _withdraw(self, command_id: int, why: str) -> bool:
        return self.store.withdraw(command_id, now=time.time(), why=why)

    def withdraw_quietly(self, command_id: int, why: str) -> None:
        """Withdraw after a failure; the failure is what the user must see, not this."""
        with contextlib.suppress(CanaryError):
            self._withdraw(command_id, why)

    def tick_here(self) -> bool:
        """One controller tick in this process (it consumes every pending command); False
        when another controller claimed the rollout first."""
        try:
            self.store.claim(self.rollout_id, now=time.time())
        except UsageError:
            return False
        try:
            t = self.target
            # A command carried out here may promote (minutes on AWS): keep the lease.
            keeper = RenewingProgress(self.store, self.rollout_id, self.progress)
            Controller(
                t.router,
                t.workload,
                t.metrics,
                self.store,
                self.rollout_id,
                progress=keeper,
                alarms=alarm_source(t),
            ).tick()
        finally:
            self.store.release(self.rollout_id)
        return True

    def await_effect(self, command: Command, before: Rollout) -> tuple[Rollout, Weights]:
        """The rollout and live weights once the command's change is in effect."""
        start = self.clock()
        verb = _VERB[command]
        while True:
            r = self.store.get(self.rollout_id)
            live = self.target.router.get_weights()
            done = in_effect(command, before, r, live)
            if done:
                return r, live
            if done is False:
                reason = f": {r.reason}" if r.reason else ""
                raise OperationFailed(
                    f"the {verb} did not take effect: rollout #{r.id} is {r.status} at step "
                    f"{r.step + 1}, weights {live}{reason}",
                    hint="see `canary history` for what happened",
                )
            limit = self.deadlines.effect_s
            if r.status is S.PROMOTING:
                limit = self.deadlines.promotion_s
                self.progress.update("promoting: stable's tasks take the judged image")
            elif r.health_wait_since is not None:
                # The step's weights go on once its new tasks are healthy (ECS: minutes).
                limit = max(limit, self.deadlines.capacity_s)
                self.progress.update("waiting for the step's new tasks to be healthy")
            if self.clock() - start > limit:
                raise OperationFailed(
                    f"the {verb} was taken but is not in effect after {limit:g}s: rollout "
                    f"#{r.id} is {r.status}, weights {live}",
                    hint="watch it with `canary status`",
                )
            # Polls follow the controller's pace (AWS: a tick every 5 s), not faster: a
            # steering command never floods the listener and state APIs.
            pace = r.plan.tick_s / 5
            if not r.status.terminal and not self.store.controller_alive(r, now=time.time()):
                self.tick_here()  # finish what a controller that died meanwhile left
                pace = r.plan.tick_s
            self.sleep(max(self.deadlines.poll_s, pace))


def in_effect(command: Command, before: Rollout, r: Rollout, live: Weights) -> bool | None:
    """True once `command` (taken when the rollout was `before`) is in effect in `r` with
    `live` weights; None while it is still on its way; False when it cannot be any more."""
    last_step = before.step + 1 >= len(before.plan.steps)
    if command is Command.ABORT:
        if r.status is S.ROLLED_BACK:
            return live == STABLE_ONLY or None
        return False if r.status is S.PROMOTED else None
    if command is Command.PROMOTE_FULL or (command is Command.PROMOTE and last_step):
        if r.status is S.PROMOTED:
            return live == STABLE_ONLY or None
        return None if r.status is S.PROMOTING else False
    if command is Command.PAUSE:
        return r.status is S.PAUSED
    if r.status in (S.PROMOTING, S.PROMOTED):
        return True  # resumed or promoted a step, and the rollout went on to the end
    advanced = command is Command.RESUME or r.step > before.step
    if r.status is S.RUNNING and advanced:
        return live == r.plan.weights(r.step) or None
    return False


def end_rollout(
    target: Target, store: RolloutState | None, *, via: str, progress: Progress
) -> Steered | None:
    """`rollback` or `deploy --force` during a rollout: it ends as `abort` ends it (100/0
    verified, rolled back), recorded with who and how. None when no rollout is active."""
    if store is None or store.active() is None:
        return None
    return steer(target, store, Command.ABORT, actor=operator(via), progress=progress)


def end_for_delete(
    target: Target, store: RolloutState | None, *, progress: Progress
) -> Rollout | None:
    """`delete` during a rollout: end it first (rolled back as `abort` does, recorded), so
    no controller goes on judging a stack that is going away and a later deploy is not
    refused. When the stack cannot answer any more (its daemon or listener is gone), the
    rollout is recorded as ended without a rollback. None when no rollout is active."""
    active = None if store is None else store.active()
    if store is None or active is None:
        return None
    actor = operator("delete")
    try:
        return steer(target, store, Command.ABORT, actor=actor, progress=progress).rollout
    except CanaryError as exc:
        why = f"the stack was deleted ({exc.message})"
        progress.log(f"Rollout #{active.id} could not roll back: recording it as ended")
        ended = replace(active, status=S.ROLLED_BACK, reason=why)
        event = EventRecord("rolled_back", actor, f"ended without a rollback: {why}")
        return store.save(ended, now=time.time(), events=[event])


def refuse_set_weights(store: RolloutState | None) -> None:
    """`set-weights` while a rollout runs would be silently undone or fight it: refused.
    A paused rollout leaves the weights to a human (the change is recorded)."""
    active = None if store is None else store.active()
    if active is None or active.status is S.PAUSED:
        return
    raise UsageError(
        f"rollout #{active.id} is {active.status} and owns the listener's weights: nothing changed",
        hint="`canary pause` holds it so you can set weights by hand (`canary resume` puts "
        "the step's back), or `canary abort` ends it with all traffic on stable",
    )


def refuse_deploy(store: RolloutState | None) -> None:
    """A deploy during a rollout would change what it judges: refused."""
    active = None if store is None else store.active()
    if active is None:
        return
    raise UsageError(
        f"rollout #{active.id} is {active.status}: a deploy now would change the versions it "
        "is judging; nothing changed",
        hint="`canary abort` ends it (all traffic to stable), or `canary deploy --force` "
        "aborts it and then deploys",
    )
