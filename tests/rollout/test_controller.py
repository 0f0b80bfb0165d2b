"""The controller against hand-written fakes: verdicts, steps, commands, crash and resume."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from canary_deploy.errors import UsageError
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.store import Command, RolloutStatus, RolloutStore
from canary_deploy.weights import Weights
from tests.rollout.fakes import Clock, FakeMetrics, FakeRouter, FakeWorkload


class Rig:
    """Without a baseline unless asked (the canary against stable's tasks), so these tests
    pin the controller's mechanics; tests/rollout/test_baseline.py covers the baseline."""

    def __init__(
        self, tmp_path: Path, *, baseline: bool = False, warmup: float = 0, **metrics: object
    ) -> None:
        self.clock = Clock()
        self.router = FakeRouter()
        self.workload = FakeWorkload(router=self.router)
        self.metrics = FakeMetrics(self.router, **metrics)  # type: ignore[arg-type]
        self.store = RolloutStore(tmp_path / "state.db", "stack")
        self.plan = build_plan(
            "local",
            {
                "min_duration": 10,
                "max_duration": 30,
                "min_requests": 20,
                "interval": 2,
                "baseline": baseline,
                "warmup": warmup,
            },
        )

    def start(self) -> Controller:
        r = start_rollout(self.store, self.plan, self.metrics, canary_image="v2", clock=self.clock)
        return self.controller(r.id)

    def controller(self, rollout_id: int) -> Controller:
        return Controller(
            self.router, self.workload, self.metrics, self.store, rollout_id, clock=self.clock
        )

    def run(self, c: Controller, seconds: float, step: float = 0.5) -> RolloutStatus:
        status = self.store.get(c.rollout_id).status
        elapsed = 0.0
        while elapsed < seconds and not status.terminal:
            self.metrics.record(int(self.clock.t))
            self.clock.advance(step)
            elapsed += step
            status = c.tick().rollout.status
        return status


def test_bad_canary_is_rolled_back_with_one_router_call(tmp_path: Path) -> None:
    rig = Rig(tmp_path, stable_error_rate=0.01, canary_error_rate=0.2)
    c = rig.start()
    assert rig.run(c, 300) is RolloutStatus.ROLLED_BACK
    assert rig.router.weights == Weights(100, 0)
    # Step 1's weights, then exactly one call for the rollback.
    assert rig.router.calls == [Weights(95, 5), Weights(100, 0)]
    assert rig.workload.canary_count == 0
    kinds = [e.kind for e in rig.store.events(c.rollout_id)]
    assert "rollback" in kinds and kinds[-1] == "rolled_back"
    decision = next(e for e in rig.store.events() if e.kind == "decision")
    assert decision.data is not None and decision.data["verdict"] == "rollback"
    assert decision.data["metrics"][0]["canary_hits"] > 0


def test_good_canary_walks_every_step_then_promotes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, stable_error_rate=0.01, canary_error_rate=0.01)
    c = rig.start()
    assert rig.run(c, 600) is RolloutStatus.PROMOTED
    assert rig.router.calls == [
        Weights(95, 5),
        Weights(75, 25),
        Weights(50, 50),
        Weights(0, 100),
        Weights(100, 0),
    ]
    assert rig.workload.promotions == 1
    assert rig.workload.stable_image == "v2"


def test_latency_regression_rolls_back(tmp_path: Path) -> None:
    rig = Rig(tmp_path, latency=True, stable_latency_s=0.05, canary_latency_s=0.08)
    c = rig.start()
    assert rig.run(c, 300) is RolloutStatus.ROLLED_BACK
    rollback = next(e for e in rig.store.events() if e.kind == "rollback")
    assert "slower than 50 ms" in rollback.message


def test_a_new_controller_resumes_at_the_same_step_with_the_same_judge(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 35)  # past step 1's max duration: into step 2
    before = rig.store.get(c.rollout_id)
    assert before.step == 1
    # A fresh process: new store connection, new controller, same db.
    rig.store = RolloutStore(tmp_path / "state.db", "stack")
    again = rig.controller(c.rollout_id)
    assert rig.store.get(c.rollout_id).judge == before.judge
    result = again.tick()
    assert result.rollout.step == 1
    assert rig.router.calls == [Weights(95, 5), Weights(75, 25)]  # nothing repeated


def test_a_crash_between_intent_and_action_is_finished_by_the_next_tick(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 3)
    rig.store.send(c.rollout_id, Command.ABORT, actor="user")
    rig.router.fail_next = True
    with pytest.raises(RuntimeError):
        c.tick()
    assert rig.store.get(c.rollout_id).status is RolloutStatus.ROLLING_BACK
    assert rig.store.pending_commands(c.rollout_id) == []  # consumed with the intent
    assert c.tick().rollout.status is RolloutStatus.ROLLED_BACK
    assert rig.router.weights == Weights(100, 0)


def test_commands_pause_resume_promote_abort(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 3)
    rig.store.send(c.rollout_id, Command.PAUSE, actor="user")
    assert rig.run(c, 60) is RolloutStatus.PAUSED
    assert rig.store.get(c.rollout_id).step == 0  # held while paused
    rig.store.send(c.rollout_id, Command.RESUME, actor="user")
    rig.store.send(c.rollout_id, Command.PROMOTE, actor="user")
    r = c.tick().rollout
    assert (r.status, r.step) == (RolloutStatus.RUNNING, 1)
    assert rig.router.weights == Weights(75, 25)
    rig.store.send(c.rollout_id, Command.ABORT, actor="user")
    assert c.tick().rollout.status is RolloutStatus.ROLLED_BACK
    assert rig.router.weights == Weights(100, 0)
    actors = {e.actor for e in rig.store.events(c.rollout_id)}
    assert "user" in actors


def test_promote_full_skips_to_promotion(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 3)
    rig.store.send(c.rollout_id, Command.PROMOTE_FULL, actor="user")
    assert c.tick().rollout.status is RolloutStatus.PROMOTED
    assert rig.workload.stable_image == "v2"
    assert rig.router.weights == Weights(100, 0)


def test_no_traffic_pauses_inconclusive_instead_of_passing(tmp_path: Path) -> None:
    rig = Rig(tmp_path, rps=0)
    c = rig.start()
    assert rig.run(c, 60) is RolloutStatus.PAUSED
    r = rig.store.get(c.rollout_id)
    assert r.step == 0 and r.reason is not None and "inconclusive" in r.reason
    paused = [e for e in rig.store.events() if e.kind == "paused"]
    assert "canary promote" in paused[-1].message


def test_weights_changed_outside_the_rollout_pause_it_and_stay(tmp_path: Path) -> None:
    # Issue 11 item 2: this used to be silently put back. tests/rollout/test_ownership.py
    # covers the rest (resume, auto-rollback while paused, crash windows).
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 3)
    rig.router.weights = Weights(50, 50)  # someone used the console
    assert c.tick().rollout.status is RolloutStatus.PAUSED
    assert rig.router.weights == Weights(50, 50)


def test_a_second_live_controller_is_refused(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    with rig.store.transaction() as db:  # pretend our parent process runs it
        db.execute("UPDATE rollouts SET owner_pid=? WHERE id=?", (os.getppid(), c.rollout_id))
    with pytest.raises(UsageError, match="already being run by process"):
        rig.store.claim(c.rollout_id, now=rig.clock())
    with pytest.raises(UsageError, match="already in progress"):
        start_rollout(rig.store, rig.plan, rig.metrics, canary_image="v3", clock=rig.clock)


def test_latency_is_not_judged_just_after_a_weight_change(tmp_path: Path) -> None:
    rig = Rig(tmp_path, latency=True, stable_latency_s=0.05, canary_latency_s=0.08)
    c = rig.start()
    # The first batch of the step's own data lies inside the 3 s settle window (the one
    # before it, cut at the step's edge, was served at the weights before the rollout).
    rig.run(c, 4.5)
    first = rig.store.get(c.rollout_id).last_decision
    assert first is not None
    latency = first.decision.metrics[1]
    assert (latency.canary_hits, latency.e_harm) == (0, 1.0)
    assert first.decision.metrics[0].canary_requests > 0  # errors are judged all along
    rig.run(c, 4)
    later = rig.store.get(c.rollout_id).last_decision
    assert later is not None and later.decision.metrics[1].canary_hits > 0


def test_harm_held_back_as_a_burst_never_lets_a_step_pass(tmp_path: Path) -> None:
    rig = Rig(tmp_path, canary_error_rate=0.0, stable_error_rate=0.01)
    c = rig.start()
    rig.metrics.burst_second = int(rig.clock()) + 12  # one second where the canary fails
    assert rig.run(c, 60) is RolloutStatus.PAUSED
    r = rig.store.get(c.rollout_id)
    assert r.step == 0 and r.reason is not None and "burst" in r.reason
    assert rig.router.weights == Weights(95, 5)  # neither rolled back nor advanced
