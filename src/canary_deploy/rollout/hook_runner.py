"""Running one hook: a command (its whole process group killed when it runs over its
timeout) or an HTTP call, retried, on a few background threads so that no hook ever
holds up a tick. When each hook runs and what its failure does: hooks.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from canary_deploy.rollout.settings import HookSettings
from canary_deploy.rollout.webhooks import backoff_s, post_json, tail
from canary_deploy.weights import Weights


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
