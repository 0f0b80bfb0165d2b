"""Lifecycle hooks in the controller, with a fake hook runner: when each runs, what a
failing gate does, and that no hook ever holds up a rollback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.hook_runner import HookContext, HookResult
from canary_deploy.rollout.hooks import Hooks
from canary_deploy.rollout.model import Event
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.settings import HookSettings, HooksSettings
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.store import Command, RolloutStatus, RolloutStore
from canary_deploy.weights import Weights
from tests.rollout.fakes import Clock, FakeMetrics, FakeRouter, FakeWorkload

ALL = ("pre_rollout", "pre_step", "post_step", "pre_promote", "post_rollout", "on_rollback")


@dataclass
class FakeRunner:
    """Every hook ends at the poll after the one that started it (passing unless named in
    `failing`), except those in `held`, which never end; each run records the listener's
    weights when it started."""

    router: FakeRouter
    failing: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)
    runs: list[tuple[str, Weights, HookContext]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    _running: set[str] = field(default_factory=set)

    def poll(self, key: str, hook: HookSettings, context: HookContext) -> HookResult | None:
        """Like the real runner: the first poll starts a run, a later one ends it."""
        if key not in self._running:
            self._running.add(key)
            self.started.append(key)
            self.runs.append((key, self.router.weights, context))
            return None
        if context.hook in self.held:
            return None
        self._running.discard(key)
        if context.hook in self.failing:
            return HookResult(False, 1.25, exit_code=1, output="smoke: /predict -> 500")
        return HookResult(True, 0.5, exit_code=0, output="ok")

    def close(self) -> None:
        pass


class Rig:
    def __init__(self, tmp_path: Path, *, steps: tuple[int, ...] = (5, 25, 50, 100),
                 canary_error_rate: float = 0.01, **hooks: Any) -> None:  # fmt: skip
        self.clock = Clock()
        self.router = FakeRouter()
        self.workload = FakeWorkload(router=self.router)
        self.metrics = FakeMetrics(self.router, canary_error_rate=canary_error_rate)
        self.store = RolloutStore(tmp_path / "state.db", "stack")
        self.plan = build_plan(
            "local",
            {"min_duration": 10, "max_duration": 30, "min_requests": 20, "interval": 2,
             "baseline": False, "warmup": 0, "steps": list(steps)},
        )  # fmt: skip
        configured = {name: hooks.get(name, "true") for name in ALL}
        self.settings = HooksSettings.model_validate(
            {**configured, "tester_header": "X-Canary=always"}
        )
        self.runner = FakeRunner(self.router)

    def start(self) -> Controller:
        r = start_rollout(self.store, self.plan, self.metrics, canary_image="v2", clock=self.clock)
        return self.controller(r.id)

    def controller(self, rollout_id: int) -> Controller:
        hooks = Hooks(self.settings, self.runner, "http://127.0.0.1:8080")
        return Controller(
            self.router, self.workload, self.metrics, self.store, rollout_id,
            clock=self.clock, hooks=hooks,
        )  # fmt: skip

    def run(self, c: Controller, seconds: float) -> RolloutStatus:
        """Tick every 0.5 s until the rollout ended and its last hooks ran."""
        elapsed = 0.0
        while elapsed < seconds:
            self.metrics.record(int(self.clock.t))
            self.clock.advance(0.5)
            elapsed += 0.5
            result = c.tick()
            if result.rollout.status.terminal and not result.hooks_pending:
                break
        return self.store.get(c.rollout_id).status

    def hook_events(self, rollout_id: int) -> list[Event]:
        return [e for e in self.store.events(rollout_id) if e.kind == "hook"]

    def ran(self) -> list[str]:
        return [key for key, _, _ in self.runner.runs]


def test_hooks_run_in_order_around_a_promoted_rollout(tmp_path: Path) -> None:
    rig = Rig(tmp_path, steps=(5, 50))
    c = rig.start()
    assert rig.run(c, 300) is RolloutStatus.PROMOTED
    assert rig.ran() == [
        "pre_rollout", "pre_step:1", "post_step:1", "pre_step:2", "pre_promote",
        "post_step:2", "post_rollout",
    ]  # fmt: skip
    weights_at = {key: w for key, w, _ in rig.runner.runs}
    # A step's gate runs before its weights go on; post_rollout once all is on stable.
    assert weights_at["pre_step:1"] == Weights(100, 0)
    assert weights_at["pre_step:2"] == Weights(95, 5)
    assert weights_at["pre_promote"] == Weights(50, 50)
    assert weights_at["post_rollout"] == Weights(100, 0)
    context = next(ctx for key, _, ctx in rig.runner.runs if key == "pre_step:2")
    env = context.env()
    assert env["CANARY_STEP"] == "2" and env["CANARY_STEP_WEIGHTS"] == "50/50"
    assert env["CANARY_TESTER_HEADER"] == "X-Canary: always"
    assert env["CANARY_LISTENER_URL"] == "http://127.0.0.1:8080"
    events = rig.hook_events(c.rollout_id)
    assert [e.data["key"] for e in events if e.data] == rig.ran()
    first = events[0]
    assert first.data is not None
    assert (first.data["ok"], first.data["duration_s"], first.data["output"]) == (True, 0.5, "ok")
    assert first.message == "pre_rollout passed in 0.50s: exit 0"


def test_a_failing_pre_promote_gate_pauses_and_a_human_promotes_past_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path, steps=(5, 50))
    rig.runner.failing = {"pre_promote"}
    c = rig.start()
    assert rig.run(c, 300) is RolloutStatus.PAUSED
    r = rig.store.get(c.rollout_id)
    assert r.reason == "the pre_promote hook failed (exit 1: smoke: /predict -> 500)"
    assert rig.workload.promotions == 0 and rig.router.weights == Weights(50, 50)
    failed = rig.hook_events(c.rollout_id)[-1]
    assert failed.data is not None and failed.data["output"] == "smoke: /predict -> 500"
    assert "failed in 1.25s: exit 1; output: smoke: /predict -> 500" in failed.message
    paused = [e for e in rig.store.events(c.rollout_id) if e.kind == "paused"][-1]
    assert "`canary promote` promotes without it" in paused.message
    rig.store.send(c.rollout_id, Command.PROMOTE, actor="user")
    assert rig.run(c, 10) is RolloutStatus.PROMOTED
    assert rig.ran().count("pre_promote") == 1  # a human's promote skips the gate


def test_a_failing_gate_set_to_roll_back_rolls_back_then_runs_on_rollback(tmp_path: Path) -> None:
    rig = Rig(tmp_path, steps=(5, 50), pre_promote={"command": "smoke", "on_failure": "rollback"})
    rig.runner.failing = {"pre_promote"}
    c = rig.start()
    assert rig.run(c, 300) is RolloutStatus.ROLLED_BACK
    assert (
        rig.store.get(c.rollout_id).reason
        == "the pre_promote hook failed (exit 1: smoke: /predict -> 500)"
    )
    assert rig.router.calls[-1] == Weights(100, 0)
    assert rig.ran()[-3:] == ["pre_promote", "on_rollback", "post_rollout"]
    weights_at = dict((key, w) for key, w, _ in rig.runner.runs)
    assert weights_at["on_rollback"] == Weights(100, 0)  # after the rollback, never before
    context = next(ctx for key, _, ctx in rig.runner.runs if key == "on_rollback")
    assert (
        context.env()["CANARY_REASON"]
        == "the pre_promote hook failed (exit 1: smoke: /predict -> 500)"
    )


def test_a_failing_pre_rollout_ends_the_rollout_before_any_traffic_shifts(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.runner.failing = {"pre_rollout"}
    c = rig.start()
    assert rig.run(c, 30) is RolloutStatus.ROLLED_BACK
    assert rig.router.calls == []  # the canary never got a request
    assert rig.ran() == ["pre_rollout", "on_rollback", "post_rollout"]


def test_a_failing_pre_step_pauses_before_the_step_and_resume_runs_it_again(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    rig.runner.failing = {"pre_step"}
    c = rig.start()
    assert rig.run(c, 30) is RolloutStatus.PAUSED
    assert rig.router.calls == []
    paused = [e for e in rig.store.events(c.rollout_id) if e.kind == "paused"][-1]
    assert "`canary resume` runs it again" in paused.message
    rig.runner.failing = set()
    rig.store.send(c.rollout_id, Command.RESUME, actor="user")
    rig.run(c, 2)
    assert rig.router.weights == Weights(95, 5)
    assert rig.ran()[:3] == ["pre_rollout", "pre_step:1", "pre_step:1"]


def test_a_running_gate_never_holds_up_a_rollback(tmp_path: Path) -> None:
    """The judge goes on judging while pre_promote runs, and an abort rolls back at once."""
    rig = Rig(tmp_path, steps=(5, 50))
    rig.runner.held = {"pre_promote"}
    c = rig.start()
    rig.run(c, 120)
    assert rig.runner.started[-1] == "pre_promote"  # the gate runs (it never ends here)
    r = rig.store.get(c.rollout_id)
    assert (r.status, r.step) == (RolloutStatus.RUNNING, 1)
    assert rig.router.weights == Weights(50, 50)
    judged = len([e for e in rig.store.events(c.rollout_id) if e.kind in ("batch", "decision")])
    rig.run(c, 10)
    assert (
        len([e for e in rig.store.events(c.rollout_id) if e.kind in ("batch", "decision")]) > judged
    )
    rig.store.send(c.rollout_id, Command.ABORT, actor="user")
    result = c.tick()
    assert result.rollout.status is RolloutStatus.ROLLED_BACK
    assert rig.router.weights == Weights(100, 0)
    assert "pre_promote" not in [e.data["key"] for e in rig.hook_events(c.rollout_id) if e.data]
    assert rig.runner.started[-1] == "on_rollback"  # started once 100/0 was in effect


def test_failing_reporting_hooks_are_recorded_and_change_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path, steps=(5, 50))
    rig.runner.failing = {"post_step", "post_rollout"}
    c = rig.start()
    assert rig.run(c, 300) is RolloutStatus.PROMOTED
    failed = [e for e in rig.hook_events(c.rollout_id) if e.data and not e.data["ok"]]
    assert [e.data["key"] for e in failed if e.data] == ["post_step:1", "post_step:2",
                                                         "post_rollout"]  # fmt: skip


def test_a_restarted_controller_does_not_run_passed_gates_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 35)  # into step 2
    assert rig.store.get(c.rollout_id).step == 1
    before = rig.ran()
    again = rig.controller(c.rollout_id)  # a new process: new Hooks, same history
    rig.run(again, 5)
    assert "pre_rollout" not in rig.ran()[len(before) :]
    assert "pre_step:1" not in rig.ran()[len(before) :]


def test_a_rollout_without_hooks_is_unchanged(tmp_path: Path) -> None:
    rig = Rig(tmp_path, steps=(5, 50))
    r = start_rollout(rig.store, rig.plan, rig.metrics, canary_image="v2", clock=rig.clock)
    c = Controller(rig.router, rig.workload, rig.metrics, rig.store, r.id, clock=rig.clock)
    assert rig.run(c, 300) is RolloutStatus.PROMOTED
    assert rig.hook_events(r.id) == [] and rig.runner.runs == []
