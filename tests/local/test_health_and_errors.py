"""Health checks decide who serves (and ALB's fail-open); start-up errors change nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from canary_deploy.local.processes import stack_processes
from tests.local.conftest import LocalStack, pid_gone, wait_for

pytestmark = pytest.mark.integration


def answered_by(stack: LocalStack, n: int) -> dict[str, int]:
    """Which canary/stable task answered each of n /whoami requests (task id -> count)."""
    out = stack.ok("load", "-n", str(n), "-c", "1", "--path", "/whoami").stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0].isdigit() and parts[1] == "200":
            counts[parts[3]] = counts.get(parts[3], 0) + 1
    return counts


def canary_health(stack: LocalStack) -> dict[str, str | None]:
    return {t["task_id"]: t["health"] for t in stack.tasks() if t["version"] == "canary"}


def test_unhealthy_canary_task_gets_no_traffic_and_an_all_unhealthy_group_fails_open(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    sick_dir = stack.root
    # Each canary task turns unhealthy while the file sick-<its port> exists.
    canary = f"CANARY_FAULT_FAIL_HEALTH_FILE={sick_dir}/sick-$PORT builtin:v2"
    stack.ok(
        "deploy", "--image-canary", canary, "--stable-count", "1", "--canary-count", "2",
        "--stable-weight", "0", "--canary-weight", "100",
    )  # fmt: skip
    tasks = {t["task_id"]: t for t in stack.tasks() if t["version"] == "canary"}
    assert set(answered_by(stack, 8)) == set(tasks), "both healthy canary tasks serve"

    sick, well = sorted(tasks)
    (sick_dir / f"sick-{tasks[sick]['port']}").touch()
    wait_for(lambda: canary_health(stack)[sick] == "unhealthy", 15, "the health check to fail")
    assert answered_by(stack, 8) == {well: 8}
    status: dict[str, Any] = stack.status()
    assert status["versions"]["canary"]["target_group"]["unhealthy"] == 1

    (sick_dir / f"sick-{tasks[well]['port']}").touch()
    wait_for(lambda: canary_health(stack)[well] == "unhealthy", 15, "the health check to fail")
    # ALB fails open: with every target unhealthy, all of them get traffic again.
    assert set(answered_by(stack, 8)) == {sick, well}
    notes = " ".join(stack.status()["notes"])
    assert "every canary target is unhealthy" in notes and "fails open" in notes


def test_busy_port_is_a_clear_error_and_starts_nothing(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", stack.port))
        busy.listen()
        result = stack.run("deploy")
    assert result.exit_code == 2
    assert f"port {stack.port} on 127.0.0.1 is already in use" in result.stderr
    assert "--listen" in result.stderr and "CANARY_LISTEN" in result.stderr
    assert stack.paths.daemon_pid() is None
    assert stack_processes(stack.paths.marker) == []
    assert not stack.paths.state_dir.exists()  # a failed first deploy leaves no file either
    assert stack.run("status").exit_code == 1


def test_first_deploy_with_a_command_that_exits_at_once_leaves_nothing_running(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    result = stack.run("deploy", "--image-stable", "false $PORT")
    assert result.exit_code == 2
    assert "stable image 'false $PORT' exited at once with code 1" in " ".join(
        result.stderr.split()
    )
    assert stack.paths.daemon_pid() is None
    assert stack_processes(stack.paths.marker) == []
    missing = stack.run("status")
    assert missing.exit_code == 1 and "no local stack" in missing.stderr


def test_two_concurrent_deploys_share_one_daemon(new_stack: Callable[[], LocalStack]) -> None:
    stack = new_stack()
    first = subprocess.Popen(
        [sys.executable, "-m", "canary_deploy", "deploy"],
        cwd=stack.root,
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        second = stack.run("deploy")
        _, first_err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, first_err
    assert second.exit_code == 0, second.stderr
    status = stack.status()
    assert status["versions"]["stable"]["service"]["running"] == 2
    assert len(stack.tasks()) == 3, "the second daemon must not start (or kill) tasks"


def test_kill_9_of_the_data_plane_also_ends_what_tasks_started(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    # A task whose command leaves a child of its own behind (a shell's background job).
    image = (
        f"sh -c 'sleep 300 & exec {sys.executable} -m canary_deploy.sample_app "
        "--version v1 --port $PORT'"
    )
    stack.ok(
        "deploy", "--image-stable", image, "--stable-count", "1", "--canary-count", "0", "--yes"
    )
    processes = stack_processes(stack.paths.marker)
    tasks = [p for p in processes if b"CANARY_TASK_ID=" in Path(f"/proc/{p}/environ").read_bytes()]
    assert len(tasks) == 2, "the task and the shell's background sleep"
    # The tasks are the data plane's children (a daemon's death leaves them serving).
    plane = stack.paths.dataplane_pid()
    assert plane is not None
    os.kill(plane, signal.SIGKILL)
    # Every process of the stack dies with it: tasks, their children, the daemon.
    wait_for(lambda: all(pid_gone(p) for p in processes), 10, "every stack process to die")
