"""The stack's watchdog: a tiny process that kills every process of the stack (tasks,
their children, the daemon, the rollout controller) the moment the data plane dies, also
by `kill -9`.

PR_SET_PDEATHSIG already kills each task process with the data plane, but not what a task
started itself (a shell's child, a server's worker processes). The watchdog gets SIGTERM
when the data plane dies (its own PR_SET_PDEATHSIG) and sweeps by the stack's marker.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from canary_deploy.local.processes import kill_stack_processes, tie_to_parent


def sweep(marker: str) -> None:
    # Twice: a task may have forked while the first sweep ran.
    for _ in range(2):
        kill_stack_processes(marker)
        time.sleep(0.05)


def start_watchdog(marker: str) -> subprocess.Popen[bytes]:
    """Start the watchdog for this data plane's stack (from its main thread)."""
    parent = os.getpid()
    return subprocess.Popen(
        [sys.executable, "-m", "canary_deploy.local.watchdog", marker, str(parent)],
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: tie_to_parent(parent, signal.SIGTERM),
        close_fds=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m canary_deploy.local.watchdog")
    parser.add_argument("marker")
    parser.add_argument("parent", type=int)
    args = parser.parse_args()

    def on_parent_death(signum: int, frame: FrameType | None) -> None:
        sweep(args.marker)
        os._exit(0)

    signal.signal(signal.SIGTERM, on_parent_death)
    if os.getppid() != args.parent:  # the data plane died before the handler was set
        on_parent_death(signal.SIGTERM, None)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
