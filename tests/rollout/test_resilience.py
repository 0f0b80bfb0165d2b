"""A rollout survives its own failures: a failing tick is tried again (the controller does
not die on a throttled call and leave the canary at its step with nothing judging it),
abort always wins over a promotion sent in the same tick, and a steering command that
fails is never left pending to fire later."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from canary_deploy.backend import SilentProgress
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.rollout import arms, loop, steering
from canary_deploy.rollout.state import LeaseLost, StaleState
from canary_deploy.rollout.steering import Deadlines
from canary_deploy.rollout.store import Command, RolloutStatus
from canary_deploy.weights import Weights
from tests.rollout.fakes import FakeTarget
from tests.rollout.test_controller import Rig


class _View:
    def __init__(self) -> None:
        self.shown = 0

    def show(self, result: object, quantiles: object) -> None:
        self.shown += 1


class _Flaky:
    """Wraps the router: its reads fail (as a throttled DescribeListeners) while `failing`."""

    def __init__(self, inner: object, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def get_weights(self) -> Weights:
        if self.failures > 0:
            self.failures -= 1
            raise OperationFailed("AWS is throttling this account: Rate exceeded")
        return self.inner.get_weights()  # type: ignore[attr-defined, no-any-return]


def _sleeper(rig: Rig):  # type: ignore[no-untyped-def]
    until = rig.clock.t + 7200

    def sleep(seconds: float) -> None:
        assert rig.clock.t < until, "the rollout never ended"
        rig.metrics.record(int(rig.clock.t))
        rig.clock.advance(seconds)

    return sleep


def test_a_failing_tick_is_tried_again_and_the_rollout_goes_on(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    r = rig.start().tick().rollout
    rig.router = _Flaky(rig.router, failures=5)  # type: ignore[assignment]
    warnings: list[str] = []
    final = loop.run(
        FakeTarget(rig),
        rig.store,
        r,
        _View(),
        tick_every_s=0.5,
        warn=warnings.append,
        sleep=_sleeper(rig),
        clock=rig.clock,
    )
    assert final.status is RolloutStatus.PROMOTED
    assert len(warnings) == 5 and "Rate exceeded" in warnings[0]


def test_the_controller_gives_up_after_failing_for_ten_minutes(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    r = rig.start().tick().rollout
    rig.router = _Flaky(rig.router, failures=10**6)  # type: ignore[assignment]
    with pytest.raises(OperationFailed) as stopped:
        loop.run(
            FakeTarget(rig), rig.store, r, _View(), tick_every_s=5, sleep=_sleeper(rig),
            clock=rig.clock,
        )  # fmt: skip
    assert "ticks failed for 600s" in stopped.value.message
    assert stopped.value.hint is not None and "canary rollout" in stopped.value.hint
    assert rig.store.get(r.id).status is RolloutStatus.RUNNING  # left as it was, never lost


def test_a_lost_lease_stops_the_controller_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    r = rig.start().tick().rollout

    class _Lost(_Flaky):
        def get_weights(self) -> Weights:
            raise LeaseLost("another controller took rollout 1 over")

    rig.router = _Lost(rig.router, failures=0)  # type: ignore[assignment]
    with pytest.raises(LeaseLost):
        loop.run(FakeTarget(rig), rig.store, r, _View(), sleep=_sleeper(rig), clock=rig.clock)


@pytest.mark.parametrize("late", [Command.PROMOTE, Command.PROMOTE_FULL, Command.RESUME])
def test_abort_wins_over_a_command_sent_after_it_in_the_same_tick(
    tmp_path: Path, late: Command
) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    r = c.tick().rollout
    rig.store.send(r.id, Command.ABORT, actor="alice")
    rig.store.send(r.id, late, actor="pipeline")
    ended = c.tick().rollout
    assert ended.status is RolloutStatus.ROLLED_BACK
    assert rig.router.weights == Weights(100, 0)
    assert rig.store.pending_commands(r.id) == []
    ignored = [e for e in rig.store.events(r.id) if e.kind == "ignored"]
    assert len(ignored) == 1 and ignored[0].actor == "pipeline"


QUICK = Deadlines(consume_s=1.0, effect_s=5.0, poll_s=0.02)


def test_a_steering_command_that_fails_is_withdrawn_never_left_pending(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    r = rig.start().tick().rollout
    rig.store.release(r.id)  # no controller: the command acts in this process, and fails
    rig.router = _Flaky(rig.router, failures=10**6)  # type: ignore[assignment]
    with pytest.raises(OperationFailed, match="Rate exceeded"):
        steering.steer(FakeTarget(rig), rig.store, Command.PROMOTE, actor="bob", deadlines=QUICK)
    assert rig.store.pending_commands(r.id) == []
    withdrawn = [e for e in rig.store.events(r.id) if e.kind == "withdrawn"]
    assert len(withdrawn) == 1 and "Rate exceeded" in withdrawn[0].message


def test_a_command_withdrawn_while_a_tick_runs_is_not_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    r = c.tick().rollout
    command_id = rig.store.send(r.id, Command.ABORT, actor="bob")
    read = rig.store.pending_commands

    def read_then_withdrawn(rollout_id: int) -> list[tuple[int, Command, str]]:
        pending = read(rollout_id)
        rig.store.withdraw(command_id, now=rig.clock.t, why="not taken in time")
        return pending

    monkeypatch.setattr(rig.store, "pending_commands", read_then_withdrawn)
    with pytest.raises(StaleState):
        c.tick()
    monkeypatch.undo()
    assert rig.store.get(r.id).status is RolloutStatus.RUNNING
    assert rig.router.weights != Weights(100, 0)  # the user was told: nothing changed
    assert c.tick().rollout.status is RolloutStatus.RUNNING


def test_abort_of_a_promotion_left_unfinished_is_refused(tmp_path: Path) -> None:
    """Stable may already run the judged image: 100/0 would roll nothing back."""
    rig = Rig(tmp_path)
    r = rig.start().tick().rollout
    with rig.store.transaction() as db:
        db.execute("UPDATE rollouts SET status='promoting', owner_pid=NULL WHERE id=?", (r.id,))
    with pytest.raises(UsageError, match=r"promoting \(left unfinished\): too late to abort") as e:
        steering.steer(FakeTarget(rig), rig.store, Command.ABORT, actor="bob", deadlines=QUICK)
    assert "`canary rollout` finishes the promotion" in (e.value.hint or "")
    assert rig.store.pending_commands(r.id) == []


@pytest.mark.parametrize(
    ("step", "restarts", "scaled"),
    [
        (0, 1, []),  # the first step: baseline and fresh canary tasks start together
        (1, 0, [("baseline", 1)]),  # 50/25/25: never restart the canary's serving tasks
        (3, 0, []),  # 0/100, a soak step: the baseline serves nothing, nothing to start
    ],
)
def test_a_resumed_rollout_gets_its_baseline_without_restarting_a_serving_canary(
    tmp_path: Path, step: int, restarts: int, scaled: list[tuple[str, int]]
) -> None:
    rig = Rig(tmp_path, baseline=True)
    r = rig.start().tick().rollout
    rig.workload.baseline_count = 0  # stopped behind the rollout's back
    before = rig.workload.canary_restarts
    rig.workload.scaled.clear()
    r = rig.store.save(replace(r, step=step), now=rig.clock.t)
    arms.ensure_baseline(FakeTarget(rig), r, SilentProgress())
    assert rig.workload.canary_restarts - before == restarts
    assert rig.workload.scaled == scaled


def test_a_promote_waiting_for_new_tasks_gets_time_and_polls_at_the_controllers_pace(
    tmp_path: Path,
) -> None:
    """On AWS a step's weights go on once its new tasks are healthy (minutes): `promote`
    waits for that (not the 60 s of a weight change), and acting with no controller it
    ticks at the plan's pace, not 10 times a second."""
    rig = Rig(tmp_path)
    rig.plan = replace(rig.plan, tick_s=5.0)
    rig.clock.t = time.time() - 5  # the command's own ticks run on the real clock
    r = rig.start().tick().rollout
    rig.store.release(r.id)
    rig.workload.healthy_at_most = {"canary": 0}  # the next step's tasks never get healthy
    t = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        t[0] += seconds

    deadlines = Deadlines(consume_s=1.0, effect_s=5.0, capacity_s=30.0, poll_s=0.02)
    with pytest.raises(OperationFailed, match="not in effect after 30s"):
        steering.steer(
            FakeTarget(rig), rig.store, Command.PROMOTE, actor="bob", deadlines=deadlines,
            sleep=sleep, clock=lambda: t[0],
        )  # fmt: skip
    assert slept and min(slept) >= 5.0
    assert rig.store.get(r.id).health_wait_since is not None
