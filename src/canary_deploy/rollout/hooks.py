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

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from canary_deploy.rollout.model import Event, EventRecord, Rollout, RolloutStatus
from canary_deploy.rollout.settings import HOOK_NAMES, HookSettings, HooksSettings
from canary_deploy.rollout.webhooks import backoff_s, post_json, tail
from canary_deploy.weights import Weights

# The actor hook runs are recorded under in the history.
HOOK_ACTOR = "hook"


@dataclass(frozen=True)
class HookContext:
    """What a hook is told about the rollout: as environment variables (commands) or as
    the JSON body (HTTP)."""

    hook: str
    rollout_id: int
    stack: str
    step: int  # 1-based
    steps: int
    weights: Weights  # live on the listener when the hook starts
    step_weights: Weights  # the step's (for pre_step: about to go on)
    status: str
    canary_image: str | None
    listener_url: str
    tester_header: str | None
    reason: str | None = None

    def env(self) -> dict[str, str]:
        return {
            "CANARY_HOOK": self.hook,
            "CANARY_ROLLOUT_ID": str(self.rollout_id),
            "CANARY_STACK": self.stack,
            "CANARY_STEP": str(self.step),
            "CANARY_STEPS": str(self.steps),
            "CANARY_WEIGHTS": str(self.weights),
            "CANARY_STEP_WEIGHTS": str(self.step_weights),
            "CANARY_CANARY_WEIGHT": str(self.step_weights.canary),
            "CANARY_STATUS": self.status,
            "CANARY_IMAGE": self.canary_image or "",
            "CANARY_LISTENER_URL": self.listener_url,
            "CANARY_TESTER_HEADER": self.tester_header or "",
            "CANARY_REASON": self.reason or "",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "rollout_id": self.rollout_id,
            "stack": self.stack,
            "step": self.step,
            "steps": self.steps,
            "weights": self.weights.to_dict(),
            "step_weights": self.step_weights.to_dict(),
            "status": self.status,
            "canary_image": self.canary_image,
            "listener_url": self.listener_url,
            "tester_header": self.tester_header,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class HookResult:
    """One finished hook run: passed or not, how long it took, what it answered."""

    ok: bool
    duration_s: float
    exit_code: int | None = None
    http_status: int | None = None
    output: str = ""  # the tail of its output (a command's stdout+stderr, a response body)
    error: str | None = None  # timed out, not found, unreachable
    attempts: int = 1

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.http_status is not None:
            return f"HTTP {self.http_status}"
        return f"exit {self.exit_code}"


class LiveProcesses:
    """The hook processes running now, so that a runner that closes kills them (and a
    process started after that is killed at once)."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._closed = False

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)
            if self._closed:
                _kill_group(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        with self._lock:
            self._closed = True
            for proc in self._procs:
                _kill_group(proc)


def run_command(
    command: str | Sequence[str],
    env: dict[str, str],
    timeout: float,
    workdir: Path | None,
    live: LiveProcesses | None = None,
) -> HookResult:
    """Run a hook's command (a string through /bin/sh, a list as is) with `timeout`; its
    whole process group is killed when it runs over."""
    start = time.monotonic()
    shell = isinstance(command, str)
    try:
        proc = subprocess.Popen(
            command if shell else list(command),
            shell=shell,
            env={**os.environ, **env},
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a timeout kills its children too
        )
    except OSError as exc:
        what = command if shell else " ".join(command)
        return HookResult(False, time.monotonic() - start, error=f"cannot run {what!r}: {exc}")
    live = live or LiveProcesses()
    live.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, _ = proc.communicate()
        took = time.monotonic() - start
        output = tail(out.decode(errors="replace"))
        return HookResult(False, took, output=output, error=f"timed out after {timeout:g}s")
    finally:
        live.discard(proc)
    took = time.monotonic() - start
    code = proc.returncode
    return HookResult(code == 0, took, exit_code=code, output=tail(out.decode(errors="replace")))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def execute(
    hook: HookSettings,
    context: HookContext,
    workdir: Path | None,
    sleep: Callable[[float], None] = time.sleep,
    live: LiveProcesses | None = None,
) -> HookResult:
    """Run one hook to its end, retries included (after 1, 2, 4... s): a command passes
    on exit 0, an HTTP call on a 2xx answer."""
    start = time.monotonic()
    tries = 1
    result = _once(hook, context, workdir, live)
    while not result.ok and tries <= hook.retries:
        sleep(backoff_s(tries))
        tries += 1
        result = _once(hook, context, workdir, live)
    return replace(result, duration_s=time.monotonic() - start, attempts=tries)


def _once(
    hook: HookSettings, context: HookContext, workdir: Path | None, live: LiveProcesses | None
) -> HookResult:
    if hook.command is not None:
        return run_command(hook.command, context.env(), hook.timeout, workdir, live)
    assert hook.url is not None
    start = time.monotonic()
    answer = post_json(hook.url, context.to_dict(), headers=hook.headers, timeout=hook.timeout)
    return HookResult(
        answer.ok,
        time.monotonic() - start,
        http_status=answer.status,
        output=answer.body,
        error=answer.error,
    )


class HookRunner(Protocol):
    """Runs hooks in the background, so no hook ever holds up a tick."""

    def poll(self, key: str, hook: HookSettings, context: HookContext) -> HookResult | None:
        """Start `hook` under `key` unless a run under that key is under way; the result
        once that run has finished (handed out once: the next poll starts a new run),
        else None."""
        ...

    def close(self) -> None:
        """Stop waiting for runs under way (their processes are killed)."""
        ...


class ThreadedHookRunner:
    """A HookRunner on a few threads; commands run in `workdir`."""

    def __init__(self, workdir: Path | None = None, *, max_workers: int = 4) -> None:
        self.workdir = workdir
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="hook")
        self._runs: dict[str, Future[HookResult]] = {}
        self._lock = threading.Lock()
        self._live = LiveProcesses()

    def poll(self, key: str, hook: HookSettings, context: HookContext) -> HookResult | None:
        with self._lock:
            run = self._runs.get(key)
            if run is None:
                self._runs[key] = self._pool.submit(
                    execute, hook, context, self.workdir, live=self._live
                )
                return None
            if not run.done():
                return None
            del self._runs[key]
        try:
            return run.result()
        except Exception as exc:  # a bug in a hook run must not stop the rollout
            return HookResult(False, 0.0, error=f"the hook could not run: {exc!r}")

    def close(self) -> None:
        self._live.kill_all()
        self._pool.shutdown(wait=False, cancel_futures=True)


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
