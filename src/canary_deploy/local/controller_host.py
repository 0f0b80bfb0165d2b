"""The daemon keeps the rollout controller running: a rollout outlives its terminal.

Every second the daemon looks for an active rollout that no live controller ticks (its
owner is gone or its heartbeat is stale) and starts one (`rollout/runner.py`) as a child
process, tied to the daemon's life and marked as one of the stack's processes. A
controller that keeps failing is started again with a growing pause (at most 30 s), and
each start and exit is a daemon event. A daemon that dies takes its controller along; the
daemon the data plane starts next starts another, which resumes the rollout from its
stored state (the controller's tick is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing

from canary_deploy.local.paths import StackPaths, private_opener
from canary_deploy.local.processes import MARKER_ENV, tie_to_parent
from canary_deploy.rollout.handover import open_rollouts

CHECK_EVERY_S = 1.0
MAX_BACKOFF_S = 30.0
STOP_TIMEOUT_S = 5.0


class ControllerHost:
    """Starts, watches and stops the controller process of one local stack."""

    def __init__(
        self,
        paths: StackPaths,
        on_event: Callable[[str, None, str], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.paths = paths
        self.on_event = on_event
        self.clock = clock
        self.child: subprocess.Popen[bytes] | None = None
        self._failures = 0
        self._not_before = 0.0

    @property
    def log_path(self) -> os.PathLike[str]:
        return self.paths.state_dir / "controller.log"

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY_S)
            await asyncio.to_thread(self.check)

    def check(self) -> None:
        """Reap an exited controller; start one when a rollout needs it."""
        if self.child is not None:
            code = self.child.poll()
            if code is None:
                return
            self._exited(code)
        if self.clock() < self._not_before or not self._needs_controller():
            return
        self._start()

    def _exited(self, code: int) -> None:
        self.child = None
        if code == 0:
            # Done, or another controller holds the rollout: look again a little later.
            self._failures = 0
            self._not_before = self.clock() + 2 * CHECK_EVERY_S
            return
        self._failures += 1
        pause = min(MAX_BACKOFF_S, 2.0 ** (self._failures - 1))
        self._not_before = self.clock() + pause
        self.on_event(
            "controller",
            None,
            f"rollout controller exited with code {code}; starting it again in {pause:g}s "
            f"(its log: {self.log_path})",
        )

    def _needs_controller(self) -> bool:
        store = open_rollouts(self.paths.state_dir)
        if store is None:
            return False
        with closing(store):
            active = store.active()
            return active is not None and not store.controller_alive(active, now=self.clock())

    def _start(self) -> None:
        env = dict(os.environ)
        env[MARKER_ENV] = self.paths.marker
        parent = os.getpid()
        with open(self.log_path, "ab", opener=private_opener) as log:
            self.child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "canary_deploy.rollout.runner",
                    "--state-dir",
                    str(self.paths.state_dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.paths.state_dir),
                preexec_fn=lambda: tie_to_parent(parent),
                close_fds=True,
            )
        self.on_event("controller", None, f"rollout controller started (pid {self.child.pid})")

    def stop(self) -> None:
        """Stop the controller (it is idempotent: the next one continues where it was)."""
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=STOP_TIMEOUT_S)
