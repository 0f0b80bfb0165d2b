"""The watchdog: when the data plane dies, even by `kill -9`, every process carrying the
stack's marker dies with it (what a task started itself too), and nothing else does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from canary_deploy.local.processes import MARKER_ENV
from tests.local.conftest import pid_gone, wait_for

# Stands in for the data plane: starts the watchdog, then a task of the stack that left
# its process group (as a task's own child may) and one process of another stack.
DATA_PLANE = """
import os, subprocess, sys, time
from canary_deploy.local.watchdog import start_watchdog
name, marker, other = sys.argv[1:4]
dog = start_watchdog(marker)
def task(m):
    env = {**os.environ, name: m}
    return subprocess.Popen(["sleep", "60"], env=env, start_new_session=True).pid
print(dog.pid, task(marker), task(other), flush=True)
time.sleep(60)
"""


def _handles_sigterm(pid: int) -> bool:
    """The watchdog set its SIGTERM handler (before that, SIGTERM just ends it)."""
    with suppress(FileNotFoundError), Path(f"/proc/{pid}/status").open() as fh:
        for line in fh:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@contextmanager
def data_plane(marker: str, other: str) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", DATA_PLANE, MARKER_ENV, marker, other],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    try:
        yield proc, pids
    finally:
        for pid in [proc.pid, *pids]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="the sweep finds processes in /proc")
def test_kill_9_of_the_data_plane_kills_every_process_of_its_stack_and_only_those() -> None:
    marker, other = f"test-{uuid.uuid4().hex}", f"other-{uuid.uuid4().hex}"
    with data_plane(marker, other) as (plane, (watchdog, task, stranger)):
        wait_for(lambda: _handles_sigterm(watchdog), 10, "the watchdog to be ready")
        assert not pid_gone(task)

        plane.kill()
        plane.wait()

        wait_for(lambda: pid_gone(task), 10, "the stack's task to be killed")
        wait_for(lambda: pid_gone(watchdog), 10, "the watchdog to exit")
        assert not pid_gone(stranger)
