"""The data plane keeps the control plane running: it starts the daemon and starts it
again at once when it dies (a crash, `kill -9`), so nobody has to do anything.

The daemon stopping on purpose (`canary delete`, SIGTERM: it exits 0) stops the stack; a
daemon that fails before it ever took the stack over makes the start fail. Restarts back
off (0.1 s doubling up to 10 s) while the daemon keeps dying young.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable

from canary_deploy.local.options import StackOptions
from canary_deploy.local.paths import StackPaths, private_opener
from canary_deploy.local.processes import tie_to_parent

log = logging.getLogger("canary.dataplane")
POLL_S = 0.05
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 10.0
LIVED_LONG_S = 30.0  # a daemon that lived this long resets the backoff
STOP_TIMEOUT_S = 30.0  # the daemon stops every task on the way out (they drain)


class ControlPlaneKeeper:
    """Starts the daemon as a child, restarts it when it dies, stops it on request."""

    def __init__(
        self, options: StackOptions, paths: StackPaths, on_stack_stop: Callable[[], None]
    ) -> None:
        self.options = options
        self.paths = paths
        self.on_stack_stop = on_stack_stop
        self.child: subprocess.Popen[bytes] | None = None
        self.took_over = False  # a daemon attached to the data plane at least once
        self.restarts = 0
        self._stopping = asyncio.Event()
        self._started_at = 0.0

    def start(self, ready_fd: int | None) -> None:
        argv = [sys.executable, "-m", "canary_deploy.local.daemon", *self.options.to_argv()]
        if ready_fd is not None:
            argv += ["--ready-fd", str(ready_fd)]
        parent = os.getpid()
        with open(self.paths.daemon_log, "ab", opener=private_opener) as out:
            self.child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=() if ready_fd is None else (ready_fd,),
                # The daemon never outlives the data plane (the watchdog sweeps it too).
                preexec_fn=lambda: tie_to_parent(parent),
            )
        self._started_at = time.monotonic()

    async def run(self) -> None:
        """Watch the daemon until the stack stops; restart it whenever it dies."""
        failures = 0
        while True:
            await asyncio.sleep(POLL_S)
            child = self.child
            code = None if child is None else child.poll()
            if code is None or self._stopping.is_set():
                continue
            if code == 0 or not self.took_over:
                why = "stopped" if code == 0 else f"failed to start (exit code {code})"
                log.info("the daemon %s: the data plane stops", why)
                self.on_stack_stop()
                return
            lived = time.monotonic() - self._started_at
            failures = 1 if lived >= LIVED_LONG_S else failures + 1
            pause = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (failures - 1))
            log.warning(
                "the daemon (pid %s) died (exit code %s) after %.1f s: starting it again in "
                "%.1f s; the listener and the tasks keep serving",
                child.pid if child else "?",
                code,
                lived,
                pause,
            )
            await asyncio.sleep(pause)
            if self._stopping.is_set():
                return
            self.restarts += 1
            self.start(None)

    async def stop(self) -> None:
        """SIGTERM the daemon (it stops the tasks and exits), SIGKILL when it hangs."""
        self._stopping.set()
        child = self.child
        if child is None or child.poll() is not None:
            return
        child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while child.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        if child.poll() is None:
            child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
