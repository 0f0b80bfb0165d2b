"""The loops a rollout is watched through until it ends: its controller run in this
process (ticks that fail tried again, notifications sent between ticks), or the controller
another process runs followed (the local daemon's)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Protocol

from canary_deploy.backend import GROUPS, Target
from canary_deploy.config import Settings
from canary_deploy.errors import CanaryError, OperationFailed
from canary_deploy.rollout.alarms import alarm_source
from canary_deploy.rollout.controller import Controller, TickResult
from canary_deploy.rollout.hooks import Hooks, any_hook, open_hooks
from canary_deploy.rollout.notify import NotificationPump, Notifier
from canary_deploy.rollout.state import (
    LeaseLost,
    RenewingProgress,
    RolloutState,
    unattended_since,
)
from canary_deploy.rollout.store import Rollout


class RolloutView(Protocol):
    """Where the runner shows each tick (a live terminal view, plain lines, or nothing)."""

    def show(self, result: TickResult, quantiles: Mapping[str, float | None]) -> None: ...


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
