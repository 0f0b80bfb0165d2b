"""The state directory is private (issue 12 item 15): the spec carries `NAME=value`
environment (maybe secrets) and the task logs whatever the tasks print, so `.canary/` is
0700 and every file the tool creates in it 0600 - also one an older version left 0755."""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from canary_deploy.backend import ReleaseSpec
from canary_deploy.local.store import StateStore
from canary_deploy.weights import Weights
from tests.local.conftest import LocalStack, wait_for

pytestmark = pytest.mark.integration


def modes(state_dir: Path) -> dict[str, str]:
    """Every entry under the state directory (and the directory) with its mode."""
    found = {".": oct(stat.S_IMODE(state_dir.stat().st_mode))}
    for path in state_dir.rglob("*"):
        found[str(path.relative_to(state_dir))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def not_private(state_dir: Path) -> dict[str, str]:
    wrong = {}
    for name, mode in modes(state_dir).items():
        path = state_dir / name
        expected = "0o700" if path.is_dir() else "0o600"
        if mode != expected:
            wrong[name] = mode
    return wrong


def test_everything_a_stack_and_its_rollout_create_is_owner_only(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    # A user's usual umask: without explicit modes files come out 0644, dirs 0755.
    old = os.umask(0o022)
    try:
        stack.ok("deploy", "--image-canary", "SECRET_TOKEN=hunter2 builtin:v2")
        stack.ok("rollout", "--detach", "--steps", "10,100", "--min-duration", "60s",
                 "--interval", "1s", "--no-baseline")  # fmt: skip
        state_dir = stack.paths.state_dir
        wait_for(lambda: (state_dir / "controller.log").exists(), 20, "the controller's log")
        # A task log the daemon creates after the last command ran: a replacement task.
        victim = next(t for t in stack.tasks() if t["version"] == "stable")
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: victim["task_id"] not in {t["task_id"] for t in stack.tasks()}
                 and len(list((state_dir / "tasks").glob("*.log"))) > 3, 30,
                 "a replacement task")  # fmt: skip
    finally:
        os.umask(old)
    # Checked before any other command runs (each opens the state, which tightens it).
    names = set(modes(state_dir))
    assert {".", "state.db", "daemon.log", "daemon.pid", "controller.json", "tasks"} <= names
    assert not_private(state_dir) == {}
    stack.ok("abort")


def test_a_state_directory_an_older_version_left_open_is_tightened(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    state_dir = stack.paths.state_dir
    with closing(StateStore(state_dir)) as store:
        store.save_spec(ReleaseSpec("A=1 builtin:v1", "builtin:v2", 2, 1, 8000, Weights(95, 5)))
    (state_dir / "tasks").mkdir(exist_ok=True)
    (state_dir / "tasks" / "stable-1.log").write_text("a task's output\n")
    (state_dir / "daemon.log").write_text("old log\n")
    for path in [state_dir, *state_dir.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    assert not_private(state_dir) != {}

    assert "STOPPED" in stack.ok("status").stdout
    assert not_private(state_dir) == {}
