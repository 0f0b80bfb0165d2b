"""`rollback` on a stack that is not running (issue 12 item 10): it restarts the stack and
says it is done only once the listener serves stable, or says clearly that it cannot."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

import pytest

from canary_deploy.errors import OperationFailed
from canary_deploy.local.processes import stack_processes
from canary_deploy.local.stack import wait_serving
from tests.local.conftest import LocalStack, wait_for


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def update(self, message: str) -> None:
        self.lines.append(message)

    def log(self, message: str) -> None:
        self.lines.append(message)


@pytest.mark.integration
def test_rollback_of_a_crashed_stack_returns_once_stable_serves(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy")
    stack.ok("set-weights", "75", "25")
    # The process that holds the listener and the tasks dies: the whole stack is down.
    holder = stack.paths.dataplane_pid() or stack.paths.daemon_pid()
    assert holder is not None
    os.kill(holder, signal.SIGKILL)
    wait_for(lambda: not stack_processes(stack.paths.marker), 15, "the stack's processes to die")

    result = stack.run("rollback")
    assert result.exit_code == 0, result.stderr
    # Done means done: the very next requests are all served by stable.
    load = stack.load(30)
    assert load["total"]["errors"] == 0, load["total"]
    assert {v: s["requests"] for v, s in load["versions"].items()} == {"v1": 30}
    assert "restarting it" in result.stderr
    assert "waiting for healthy targets" in result.stderr


def test_waiting_for_healthy_targets_reports_progress_and_fails_clearly() -> None:
    now = [0.0]
    reads: list[dict[str, list[dict[str, Any]]]] = []

    def read() -> dict[str, list[dict[str, Any]]]:
        doc = {
            "stable": [{"state": "initial"}, {"state": "unhealthy"}],
            "canary": [{"state": "healthy"}],
        }
        reads.append(doc)
        return doc

    def sleep(s: float) -> None:
        now[0] += s

    progress = Lines()
    with pytest.raises(OperationFailed) as failed:
        wait_serving(read, ["stable"], progress, 5.0, sleep=sleep, clock=lambda: now[0])
    assert "stable has no healthy target yet after 5 s" in failed.value.message
    assert "503" in failed.value.message
    assert progress.lines[-1].endswith("stable 0/2")
    assert len(reads) > 1


def test_waiting_for_healthy_targets_returns_once_each_group_has_one() -> None:
    answers = iter(
        [
            {"stable": [{"state": "initial"}], "canary": []},
            {"stable": [{"state": "healthy"}, {"state": "initial"}], "canary": []},
        ]
    )
    progress = Lines()
    wait_serving(lambda: next(answers), ["stable"], progress, 5.0, sleep=lambda s: None)
    assert progress.lines == [
        "waiting for healthy targets before the listener can serve: stable 0/1"
    ]
