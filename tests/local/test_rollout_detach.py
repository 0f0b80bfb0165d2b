"""A rollout outlives its terminal (issue 11 item 5): `canary rollout --detach` returns at
once, Ctrl-C only stops watching, `status` says who ticks the rollout and since when."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

from canary_deploy.backend import SilentProgress
from canary_deploy.cli.stack_cmds import controller_line
from canary_deploy.errors import UsageError
from canary_deploy.rollout.plan import RolloutPlan, Step
from canary_deploy.rollout.state import unattended_since
from canary_deploy.rollout.steering import end_for_delete
from canary_deploy.rollout.store import RolloutStatus, RolloutStore
from canary_deploy.rollout.summary import ControllerSummary
from canary_deploy.weights import Weights
from tests.local.conftest import LocalStack, wait_for

HELD = ("--steps", "10,50,100", "--min-duration", "60s", "--max-duration", "120s",
        "--interval", "1s", "--no-baseline")  # fmt: skip


AS_IN_A_TERMINAL = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from canary_deploy.cli.app import main; main(sys.argv[1:])"
)


def _weights(stack: LocalStack) -> dict[str, int]:
    weights: dict[str, int] = stack.status()["listener"]["weights"]
    return weights


def test_detach_returns_at_once_and_the_daemon_runs_the_rollout(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--stable-weight", "100", "--canary-weight", "0")
    started = time.monotonic()
    result = stack.ok("rollout", "--detach", *HELD)
    assert time.monotonic() - started < 30
    assert "Rollout #1 runs in the local daemon" in result.stdout
    # Nobody's terminal runs it, and it ticks: the step's weights arrive.
    wait_for(lambda: _weights(stack)["canary"] == 10, 20, "step 1's weights")
    doc = stack.status()["rollout"]
    assert doc["status"] == "running"
    controller = doc["controller"]
    assert controller["unattended_since"] is None and controller["last_tick_s"] < 10
    assert controller["pid"] is not None
    assert "Controller: last tick" in stack.ok("status").stdout
    detached = stack.ok("rollout", "--detach", "-o", "json").json()
    assert detached == {"id": 1, "status": "running", "step": 0, "detached": True}
    stack.ok("abort")
    assert _weights(stack)["canary"] == 0


def test_ctrl_c_stops_watching_only(new_stack: Callable[[], LocalStack]) -> None:
    stack = new_stack()
    stack.ok("deploy", "--stable-weight", "100", "--canary-weight", "0")
    # As a terminal's foreground job: SIGINT at its default. A test runner started in the
    # background without job control (`make test &` in a script, some CI runners) hands its
    # children SIGINT ignored, and Python leaves an ignored SIGINT ignored: the watcher
    # would never see this Ctrl-C (caught by the masks printed below: SigIgn had SIGINT).
    # PYTHONFAULTHANDLER: should it hang, SIGABRT makes it print where each thread is.
    proc = subprocess.Popen(
        [sys.executable, "-c", AS_IN_A_TERMINAL, "rollout", *HELD],
        cwd=stack.root, env={**stack.env, "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: _weights(stack)["canary"] == 10, 60, "step 1")
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            masks = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            shown = [line for line in masks if line.startswith(("SigBlk", "SigIgn", "SigCgt"))]
            print("watcher:", shown, "pytest's SIGINT:", signal.getsignal(signal.SIGINT))
            proc.send_signal(signal.SIGABRT)
            out, err = proc.communicate(timeout=10)
            raise AssertionError(f"still running 30 s after Ctrl-C:\n{out}\n{err}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "Stopped watching" in out and "goes on in the local daemon" in out
    # The rollout goes on: a step promoted by hand still happens, with nobody watching.
    stack.ok("promote")
    wait_for(lambda: _weights(stack)["canary"] == 50, 20, "step 2")
    assert stack.status()["rollout"]["controller"]["unattended_since"] is None
    stack.ok("abort")


def test_detach_is_refused_on_aws_where_this_process_is_the_controller(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    result = stack.run("--target", "aws", "rollout", "--detach")
    assert result.exit_code == 2
    assert "--detach is for the local target" in result.stderr
    assert "unattended" in result.stderr


def test_status_says_since_when_nobody_runs_a_rollout(tmp_path: Path) -> None:
    with closing(RolloutStore(tmp_path / "state.db", "demo")) as store:
        plan = RolloutPlan((Step(10, 1, 2),), baseline=False)
        r = store.create(plan, {}, now=1000.0, canary_image=None, actor="test")
        store.release(r.id)  # its controller is gone
        r = store.get(r.id)
        since = unattended_since(store, r, now=1100.0)
        assert since == 1000.0
    line = controller_line(ControllerSummary(None, 1000.0, 100.0, since, 100.0))
    assert line.startswith("unattended since ") and "(100s)" in line
    assert "nothing judges it" in line and "`canary rollout`" in line


def test_delete_ends_the_rollout_so_a_new_deploy_is_not_refused(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--stable-weight", "100", "--canary-weight", "0")
    stack.ok("rollout", "--detach", *HELD)
    wait_for(lambda: _weights(stack)["canary"] == 10, 20, "step 1")
    deleted = stack.ok("delete", "--yes")
    assert "rollout #1 ended before the delete" in deleted.stderr
    stack.ok("deploy", "--stable-weight", "100", "--canary-weight", "0")
    events = stack.ok("history", "-o", "json").json()
    assert [e["kind"] for e in events].count("rolled_back") == 1
    aborts = [e for e in events if e["kind"] == "abort"]
    assert len(aborts) == 1 and aborts[0]["actor"].endswith("(delete)")
    assert stack.status()["rollout"] is None


class _GoneRouter:
    def get_weights(self) -> Weights:
        raise UsageError("no local stack in .canary")

    def set_weights(self, weights: Weights) -> None:
        raise UsageError("no local stack in .canary")

    def verify_weights(self, weights: Weights) -> bool:
        return False


def test_delete_of_a_stack_that_cannot_answer_records_the_rollout_as_ended(
    tmp_path: Path,
) -> None:
    with closing(RolloutStore(tmp_path / "state.db", "demo")) as store:
        plan = RolloutPlan((Step(10, 1, 2),), baseline=False)
        r = store.create(plan, {}, now=time.time(), canary_image=None, actor="test")
        store.release(r.id)
        target = SimpleNamespace(router=_GoneRouter(), workload=None, metrics=None)
        ended = end_for_delete(target, store, progress=SilentProgress())
        assert ended is not None and ended.status is RolloutStatus.ROLLED_BACK
        assert ended.reason is not None and ended.reason.startswith("the stack was deleted")
        assert store.active() is None
        last = store.events(r.id)[-1]
        assert last.actor.endswith("(delete)") and "ended without a rollback" in last.message


def test_rollback_sets_100_0_even_when_the_rollout_cannot_take_it(
    new_stack: Callable[[], LocalStack],
) -> None:
    """The emergency button does not depend on the controller: one that hangs (SIGSTOP)
    does not take the abort in time, and `rollback` still puts all traffic on stable."""
    stack = new_stack()
    stack.ok("deploy", "--stable-weight", "100", "--canary-weight", "0")
    stack.ok("rollout", "--detach", *HELD)
    wait_for(lambda: _weights(stack)["canary"] == 10, 20, "step 1")
    controller = stack.status()["rollout"]["controller"]["pid"]
    os.kill(controller, signal.SIGSTOP)
    try:
        result = stack.run("rollback", timeout=90)
    finally:
        os.kill(controller, signal.SIGCONT)
    assert result.exit_code == 0, result.stderr
    assert _weights(stack) == {"stable": 100, "canary": 0, "baseline": 0}
    assert "all traffic is on stable anyway" in " ".join(result.stderr.split())
    # The controller, back, finds weights it did not set: it pauses, never overwrites them.
    wait_for(lambda: stack.status()["rollout"]["status"] == "paused", 20, "the pause")
    assert _weights(stack)["canary"] == 0
    stack.ok("abort")
