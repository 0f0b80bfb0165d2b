"""Steering commands return only once their change is in effect, or fail and say why
(never left pending to fire later); the seed's verbs yield to a running rollout."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.rollout import steering
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.steering import Deadlines
from canary_deploy.rollout.store import Command, RolloutStatus, RolloutStore, pid_alive
from canary_deploy.weights import Weights
from tests.rollout.fakes import FakeTarget
from tests.rollout.test_controller import Rig

QUICK = Deadlines(consume_s=1.0, effect_s=5.0, poll_s=0.02)


def own(rig: Rig, rollout_id: int, pid: int) -> None:
    """Pretend process `pid` runs the rollout's controller, with a fresh heartbeat."""
    with rig.store.transaction() as db:
        db.execute(
            "UPDATE rollouts SET owner_pid=?, heartbeat=? WHERE id=?",
            (pid, time.time(), rollout_id),
        )


@contextmanager
def live_controller(rig: Rig, tmp_path: Path, rollout_id: int) -> Iterator[None]:
    """A controller ticking in a thread, as `canary rollout` does in another terminal."""
    stop = threading.Event()

    def loop() -> None:
        store = RolloutStore(tmp_path / "state.db", "stack")
        c = Controller(rig.router, rig.workload, rig.metrics, store, rollout_id, clock=time.time)
        try:
            while not stop.is_set():
                if c.tick().rollout.status.terminal:
                    return
                time.sleep(0.02)
        finally:
            store.close()

    own(rig, rollout_id, os.getpid())
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def started(tmp_path: Path) -> tuple[Rig, int]:
    rig = Rig(tmp_path)
    rig.clock.t = time.time() - 5  # the controllers below tick on the real clock
    c = rig.start()
    rig.run(c, 3)
    rig.store.release(c.rollout_id)
    assert rig.router.weights == Weights(95, 5)
    return rig, c.rollout_id


def test_abort_with_no_live_controller_is_carried_out_here(tmp_path: Path) -> None:
    rig, rollout_id = started(tmp_path)
    done = steering.steer(FakeTarget(rig), rig.store, Command.ABORT, actor="alice", deadlines=QUICK)
    assert done.rollout.status is RolloutStatus.ROLLED_BACK
    assert done.weights == Weights(100, 0) == rig.router.weights
    assert done.acted_by == "this command (no controller was running)"
    assert ("abort", "alice") in {(e.kind, e.actor) for e in rig.store.events(rollout_id)}
    doc = done.to_dict()
    assert doc["rollout"]["status"] == "rolled_back" and doc["weights"]["canary"] == 0


def test_a_controller_killed_just_before_is_not_waited_for(tmp_path: Path) -> None:
    # The reproduction: SIGTERM the controller, then `abort` at once. Its process is a
    # zombie until reaped; it used to count as alive, so abort waited for a controller
    # that would never tick, printed "running", exited 0 and left the abort pending.
    rig, rollout_id = started(tmp_path)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        proc.terminate()
        deadline = time.monotonic() + 10
        while pid_alive(proc.pid):  # until it has exited, not reaped: a zombie
            assert time.monotonic() < deadline, "sleep did not exit on SIGTERM"
            time.sleep(0.01)
        own(rig, rollout_id, proc.pid)
        done = steering.steer(
            FakeTarget(rig), rig.store, Command.ABORT, actor="alice", deadlines=QUICK
        )
    finally:
        proc.wait()
    assert done.rollout.status is RolloutStatus.ROLLED_BACK
    assert rig.router.weights == Weights(100, 0)
    assert rig.store.pending_commands(rollout_id) == []


def test_a_controller_that_does_not_take_the_command_fails_it_and_withdraws_it(
    tmp_path: Path,
) -> None:
    rig, rollout_id = started(tmp_path)
    own(rig, rollout_id, os.getppid())  # alive, fresh heartbeat, never ticks
    with pytest.raises(OperationFailed, match="did not take the abort within 1s") as err:
        steering.steer(FakeTarget(rig), rig.store, Command.ABORT, actor="alice", deadlines=QUICK)
    assert err.value.exit_code == 1 and err.value.hint and "kill" in err.value.hint
    # Nothing left to fire later, and the withdrawal is on record.
    assert rig.store.pending_commands(rollout_id) == []
    withdrawn = [e for e in rig.store.events(rollout_id) if e.kind == "withdrawn"]
    assert len(withdrawn) == 1 and withdrawn[0].actor == "alice"
    assert rig.store.get(rollout_id).status is RolloutStatus.RUNNING
    assert rig.router.weights == Weights(95, 5)


@pytest.mark.parametrize(
    ("command", "status", "weights"),
    [
        (Command.ABORT, RolloutStatus.ROLLED_BACK, Weights(100, 0)),
        (Command.PAUSE, RolloutStatus.PAUSED, Weights(95, 5)),
        (Command.PROMOTE, RolloutStatus.RUNNING, Weights(75, 25)),
        (Command.PROMOTE_FULL, RolloutStatus.PROMOTED, Weights(100, 0)),
    ],
)
def test_each_command_returns_once_a_live_controller_made_it_effective(
    tmp_path: Path, command: Command, status: RolloutStatus, weights: Weights
) -> None:
    rig, rollout_id = started(tmp_path)
    with live_controller(rig, tmp_path, rollout_id):
        done = steering.steer(FakeTarget(rig), rig.store, command, actor="bob", deadlines=QUICK)
    assert (done.rollout.status, done.weights) == (status, weights)
    assert done.acted_by.startswith("controller (pid")
    if command is Command.PROMOTE:
        assert done.rollout.step == 1


def test_resume_returns_once_the_steps_weights_are_back(tmp_path: Path) -> None:
    rig, rollout_id = started(tmp_path)
    rig.router.weights = Weights(100, 0)  # the console
    target = FakeTarget(rig)
    with live_controller(rig, tmp_path, rollout_id):
        paused = steering.steer(target, rig.store, Command.PAUSE, actor="bob", deadlines=QUICK)
        assert paused.rollout.status is RolloutStatus.PAUSED
        assert "changed outside the rollout" in (paused.rollout.reason or "")
        done = steering.steer(target, rig.store, Command.RESUME, actor="bob", deadlines=QUICK)
    assert done.rollout.status is RolloutStatus.RUNNING and done.weights == Weights(95, 5)


def test_pause_on_a_paused_rollout_sends_nothing(tmp_path: Path) -> None:
    rig, rollout_id = started(tmp_path)
    steering.steer(FakeTarget(rig), rig.store, Command.PAUSE, actor="bob", deadlines=QUICK)
    again = steering.steer(FakeTarget(rig), rig.store, Command.PAUSE, actor="bob", deadlines=QUICK)
    assert "already paused" in again.notes
    assert [e.kind for e in rig.store.events(rollout_id)].count("paused") == 1


def test_a_promotion_in_progress_cannot_be_paused_and_says_so(tmp_path: Path) -> None:
    rig, rollout_id = started(tmp_path)
    with rig.store.transaction() as db:
        db.execute("UPDATE rollouts SET status='promoting' WHERE id=?", (rollout_id,))
    own(rig, rollout_id, os.getppid())
    with pytest.raises(UsageError, match="is promoting: too late to pause"):
        steering.steer(FakeTarget(rig), rig.store, Command.PAUSE, actor="bob", deadlines=QUICK)
    assert rig.store.pending_commands(rollout_id) == []


def test_set_weights_is_refused_while_a_rollout_runs_and_allowed_while_paused(
    tmp_path: Path,
) -> None:
    rig, _ = started(tmp_path)
    with pytest.raises(UsageError) as err:
        steering.refuse_set_weights(rig.store)
    text = err.value.message + (err.value.hint or "")
    assert "canary abort" in text and "canary pause" in text and err.value.exit_code == 2
    steering.steer(FakeTarget(rig), rig.store, Command.PAUSE, actor="bob", deadlines=QUICK)
    steering.refuse_set_weights(rig.store)  # paused: a human holds the weights
    steering.refuse_set_weights(None)  # no rollout store at all


def test_deploy_is_refused_while_a_rollout_is_active(tmp_path: Path) -> None:
    rig, _ = started(tmp_path)
    with pytest.raises(UsageError) as err:
        steering.refuse_deploy(rig.store)
    assert "canary abort" in (err.value.hint or "") and "--force" in (err.value.hint or "")
    steering.steer(FakeTarget(rig), rig.store, Command.ABORT, actor="bob", deadlines=QUICK)
    steering.refuse_deploy(rig.store)  # ended: deploy away


def test_the_operator_is_the_os_user_and_the_verb_used() -> None:
    assert steering.operator() == steering.operator().split(" ")[0]
    assert steering.operator("rollback").endswith(" (rollback)")
