"""Fixtures for end-to-end tests of the local target: a CLI runner per stack, each with its
own state directory and free port, and a teardown that stops every process by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from canary_deploy.balancer.admin import AdminClient
from canary_deploy.local.paths import StackPaths
from canary_deploy.local.processes import free_port, kill_stack_processes, stack_processes

# Variables that would change what the CLI does; the tests set their own.
_SCRUB = (
    "IMAGE_URI_STABLE", "IMAGE_URI_CANARY", "STABLE_WEIGHT", "CANARY_WEIGHT", "STACK_NAME",
    "DESIRED_COUNT_STABLE", "DESIRED_COUNT_CANARY", "CANARY_TARGET", "CANARY_CONFIG",
    "HEALTH_CHECK_PATH", "CANARY_STATE_DIR", "CANARY_LISTEN", "CANARY_HEALTH_PROFILE",
)  # fmt: skip


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class LocalStack:
    """Runs `canary` against one state directory and listener port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.paths = StackPaths.for_dir(root / ".canary")
        self.env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        self.env.update(
            CANARY_STATE_DIR=str(self.paths.state_dir),
            CANARY_LISTEN=f"127.0.0.1:{self.port}",
            CANARY_HEALTH_PROFILE="fast",
            CANARY_DEREGISTRATION_DELAY="0.5",
            COLUMNS="200",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *args: str, timeout: float = 120, **env: str) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "canary_deploy", *args],
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, **env: str) -> Result:
        result = self.run(*args, **env)
        assert result.exit_code == 0, f"canary {' '.join(args)}: {result.stderr}{result.stdout}"
        return result

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.ok("status", "-o", "json").json()
        return doc

    def load(self, n: int, path: str = "/whoami") -> dict[str, Any]:
        doc: dict[str, Any] = self.ok("load", "-n", str(n), "--path", path, "-o", "json").json()
        return doc

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        return AdminClient(self.paths.socket).request(method, path, body)

    def tasks(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = self.admin("GET", "/tasks")
        return tasks

    def stop_everything(self) -> None:
        """Teardown: stop the daemon by its PID, then any task process of this stack."""
        pid = self.paths.daemon_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            wait_for(lambda: self.paths.daemon_pid() is None, 15, "daemon to stop")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        kill_stack_processes(self.paths.marker)
        assert stack_processes(self.paths.marker) == [] or wait_for(
            lambda: not stack_processes(self.paths.marker), 5, "tasks to exit"
        )


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def pid_gone(pid: int) -> bool:
    """True when the process no longer exists (or is a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # (reaped between open and read: ESRCH)
        return True


@pytest.fixture
def new_stack(tmp_path: Path) -> Iterator[Callable[[], LocalStack]]:
    """A factory of stacks; every stack it made is stopped after the test."""
    made: list[LocalStack] = []

    def make() -> LocalStack:
        stack = LocalStack(tmp_path / f"stack{len(made)}")
        stack.root.mkdir()
        made.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in made:
            stack.stop_everything()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack deployed with the defaults (builtin v1 x2 stable, v2 x1 canary, 95/5)."""
    root = tmp_path_factory.mktemp("deployed")
    stack = LocalStack(root)
    try:
        stack.ok("deploy")
        yield stack
    finally:
        stack.stop_everything()
