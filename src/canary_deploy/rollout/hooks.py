"""Lifecycle hooks (`[rollout.hooks]`): commands or HTTP calls run around a rollout's
steps, in the background with timeouts, each run recorded in the rollout's history.

When each runs, and what a failure does:

- `pre_rollout`: once, before the rollout's first weights go on. A gate: failing, it
  rolls back by default (`on_failure = "pause"` holds the rollout instead).
- `pre_step`: before each step's weights go on (step 1 too, after `pre_rollout`), once
  the step's tasks are healthy. A gate (default: pause).
- `post_step`: after a step passed (its weights stay on). Recorded only.
- `pre_promote`: after the last step passed, before stable takes the canary's image. A
  gate (default: pause). `canary promote` is a human's decision: it skips the gates.
- `on_rollback`: after a rollback, once all traffic is back on stable. Recorded only.
- `post_rollout`: once the rollout ended, promoted or rolled back. Recorded only.

A gate that runs holds only what it guards (a step's weights, the promotion): the
judge goes on judging every batch meanwhile, and rolls back at once on evidence of harm.
A gate that passed is never run again for the same step (a restarted controller reads
its passes from the history); one that failed runs again when the rollout is resumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from canary_deploy.rollout.hook_runner import (
    HookContext,
    HookResult,
    HookRunner,
    ThreadedHookRunner,
)
from canary_deploy.rollout.model import ACTOR, Event, EventRecord, Rollout, RolloutStatus
from canary_deploy.rollout.settings import HOOK_NAMES, HooksSettings
from canary_deploy.weights import Weights

# The actor hook runs are recorded under in the history.
HOOK_ACTOR = "hook"


class Gate(StrEnum):
    PASSED = "passed"
    WAITING = "waiting"
    FAILED = "failed"


def hook_event(name: str, key: str, step: int, result: HookResult, gate: bool) -> EventRecord:
    """A hook run as one history event, with its duration, status and output's tail."""
    verdict = "passed" if result.ok else "failed"
    where = f" (step {step})" if name in ("pre_step", "post_step") else ""
    message = f"{name}{where} {verdict} in {result.duration_s:.2f}s: {result.describe()}"
    if result.attempts > 1:
        message += f" after {result.attempts} tries"
    if not result.ok and result.output:
        message += f"; output: {result.output.splitlines()[-1][:200]}"
    data = {
        "hook": name,
        "key": key,
        "step": step,
        "gate": gate,
        "ok": result.ok,
        "duration_s": round(result.duration_s, 3),
        "exit_code": result.exit_code,
        "http_status": result.http_status,
        "error": result.error,
        "attempts": result.attempts,
        "output": result.output,
    }
    return EventRecord("hook", HOOK_ACTOR, message, data)


def failure_reason(event: EventRecord) -> str:
    """Why a gate hook failed, from its event, as the rollout's reason: what it answered
    and the last line of its output.

    >>> failure_reason(EventRecord("hook", "hook", "", {"hook": "pre_promote",
    ...     "exit_code": 1, "output": "checking\\nsmoke: /predict -> 500"}))
    'the pre_promote hook failed (exit 1: smoke: /predict -> 500)'
    """
    data = event.data or {}
    if data.get("error"):
        what = str(data["error"])
    elif data.get("http_status") is not None:
        what = f"HTTP {data['http_status']}"
    else:
        what = f"exit {data.get('exit_code')}"
    last = str(data.get("output") or "").strip().splitlines()[-1:]
    if last and not data.get("error"):
        what += f": {last[0][:120]}"
    return f"the {data.get('hook')} hook failed ({what})"


@dataclass
class Hooks:
    """What the controller asks of the hooks: whether a gate is open, and to start the
    hooks that only report. Every finished run becomes an event of the next save."""

    settings: HooksSettings
    runner: HookRunner
    listener_url: str = ""
    _passed: set[str] | None = None
    # Reporting hooks under way (key -> name, 1-based step, context), and those recorded.
    _running: dict[str, tuple[str, int, HookContext]] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)

    def configured(self, name: str) -> bool:
        return self.settings.get(name) is not None

    def context(self, name: str, r: Rollout, live: Weights) -> HookContext:
        return HookContext(
            hook=name,
            rollout_id=r.id,
            stack=r.stack,
            step=r.step + 1,
            steps=len(r.plan.steps),
            weights=live,
            step_weights=r.plan.weights(r.step),
            status=str(r.status),
            canary_image=r.canary_image,
            listener_url=self.listener_url,
            tester_header=self.settings.tester_header,
            reason=r.reason,
        )

    def gate(
        self,
        name: str,
        r: Rollout,
        live: Weights,
        history: Callable[[], list[Event]],
        events: list[EventRecord],
    ) -> Gate:
        """Whether the gate `name` of the rollout's current step is open: PASSED (or
        none configured), WAITING while its hook runs, FAILED (recorded in `events`)."""
        hook = self.settings.get(name)
        key = gate_key(name, r.step)
        if hook is None or key in self._passes(history):
            return Gate.PASSED
        result = self.runner.poll(key, hook, self.context(name, r, live))
        if result is None:
            return Gate.WAITING
        events.append(hook_event(name, key, r.step + 1, result, gate=True))
        if result.ok:
            assert self._passed is not None
            self._passed.add(key)
            return Gate.PASSED
        return Gate.FAILED

    def _passes(self, history: Callable[[], list[Event]]) -> set[str]:
        """The gates passed so far, read from the history once per process."""
        if self._passed is None:
            self._passed = {
                str(e.data.get("key"))
                for e in history()
                if e.kind == "hook" and e.data and e.data.get("gate") and e.data.get("ok")
            }
        return self._passed

    def step_gates(
        self,
        r: Rollout,
        live: Weights,
        history: Callable[[], list[Event]],
        events: list[EventRecord],
    ) -> tuple[Rollout, bool]:
        """Before a step's weights go on: `pre_rollout` (step 1) and `pre_step`. Returns
        the rollout (paused or rolling back when one failed) and whether both passed."""
        for name in ("pre_rollout", "pre_step") if r.step == 0 else ("pre_step",):
            gate = self.gate(name, r, live, history, events)
            if gate is Gate.FAILED:
                return self.gate_failed(r, name, events), False
            if gate is Gate.WAITING:
                return r, False
        return r, True

    def promote_gate(
        self, r: Rollout, history: Callable[[], list[Event]], events: list[EventRecord]
    ) -> Rollout | None:
        """`pre_promote` before the promotion: None once it passed, else the rollout as
        it stays (waiting for the hook) or turns (paused, rolling back)."""
        live = r.applied_weights or r.plan.weights(r.step)
        gate = self.gate("pre_promote", r, live, history, events)
        if gate is Gate.PASSED:
            return None
        return r if gate is Gate.WAITING else self.gate_failed(r, "pre_promote", events)

    def gate_failed(self, r: Rollout, name: str, events: list[EventRecord]) -> Rollout:
        """A failed gate hook (its event is the last of `events`): pause or roll back."""
        why = failure_reason(events[-1])
        if self.settings.on_failure(name) == "rollback":
            events.append(EventRecord("rollback", ACTOR, f"{why}: rolling back"))
            return replace(r, status=RolloutStatus.ROLLING_BACK, reason=why)
        after = (
            "`canary promote` promotes without it"
            if name == "pre_promote"
            else "`canary resume` runs it again"
        )
        events.append(EventRecord("paused", ACTOR, f"{why}; {after}, `canary abort` rolls back"))
        return replace(r, status=RolloutStatus.PAUSED, reason=why)

    def fire(self, name: str, r: Rollout, live: Weights) -> None:
        """Start a hook that only reports (post_step), once per key; `collect` records it."""
        hook = self.settings.get(name)
        key = gate_key(name, r.step)
        if hook is None or key in self._running or key in self._done:
            return
        context = self.context(name, r, live)
        self._running[key] = (name, r.step + 1, context)
        self.runner.poll(key, hook, context)

    def collect(self, events: list[EventRecord]) -> None:
        """Record the reporting hooks that finished since the last look."""
        for key, (name, step, context) in list(self._running.items()):
            hook = self.settings.get(name)
            assert hook is not None
            result = self.runner.poll(key, hook, context)
            if result is not None:
                events.append(hook_event(name, key, step, result, gate=False))
                del self._running[key]
                self._done.add(key)

    def finish(self, r: Rollout, live: Weights, events: list[EventRecord]) -> bool:
        """Once the rollout ended: `on_rollback` (rolled back only), then `post_rollout`,
        one after the other. True while a hook still runs."""
        self.collect(events)
        names = ["on_rollback"] if r.status is RolloutStatus.ROLLED_BACK else []
        for name in [*names, "post_rollout"]:
            hook = self.settings.get(name)
            if hook is None or name in self._done:
                continue
            result = self.runner.poll(name, hook, self.context(name, r, live))
            if result is None:
                return True
            events.append(hook_event(name, name, r.step + 1, result, gate=False))
            self._done.add(name)
        return bool(self._running)

    def close(self) -> None:
        self.runner.close()


def gate_key(name: str, step: int) -> str:
    """The key of a hook's run: per step for the step hooks, once for the others.

    >>> gate_key("pre_step", 0), gate_key("pre_rollout", 0)
    ('pre_step:1', 'pre_rollout')
    """
    return f"{name}:{step + 1}" if name in ("pre_step", "post_step") else name


def any_hook(settings: HooksSettings) -> bool:
    """Whether `[rollout.hooks]` configures any hook."""
    return any(settings.get(name) is not None for name in HOOK_NAMES)


def open_hooks(settings: HooksSettings, listener_url: str) -> Hooks | None:
    """The hooks of `[rollout.hooks]`, run on threads, or None when none is configured."""
    if not any_hook(settings):
        return None
    return Hooks(settings, ThreadedHookRunner(settings.workdir), listener_url)
