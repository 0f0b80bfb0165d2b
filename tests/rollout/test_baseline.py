"""Rollouts with a baseline: three-group weights, like-for-like controls, warm-up,
the latency tolerance, and the baseline's start and stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canary_deploy.backend import RoleStatus, ServiceStatus, Status, TaskDefinitionStatus
from canary_deploy.rollout.plan import build_plan, load_imbalance
from canary_deploy.rollout.start import begin
from canary_deploy.rollout.store import RolloutStatus, RolloutStore
from canary_deploy.weights import Weights
from tests.rollout.test_controller import Rig


def test_steps_give_the_baseline_the_canarys_share_up_to_half(tmp_path: Path) -> None:
    rig = Rig(tmp_path, baseline=True, stable_error_rate=0.01, canary_error_rate=0.01)
    c = rig.start()
    assert rig.run(c, 600) is RolloutStatus.PROMOTED
    assert rig.router.calls == [
        Weights(90, 5, 5),
        Weights(50, 25, 25),
        Weights(0, 50, 50),
        Weights(0, 100, 0),  # above 50%: a soak step, no baseline traffic
        Weights(100, 0, 0),  # the promotion's one listener call ends the baseline's share
    ]
    assert rig.workload.baseline_count == 0  # stopped after that call
    messages = [e.message for e in rig.store.events(c.rollout_id)]
    assert any("soak step" in m for m in messages)
    assert any(m.startswith("baseline: stable's image") for m in messages)
    assert "baseline stopped (weight 0, 0 tasks)" in messages


def test_a_rollback_takes_the_baseline_to_zero_in_the_same_call(tmp_path: Path) -> None:
    rig = Rig(tmp_path, baseline=True, stable_error_rate=0.01, canary_error_rate=0.2)
    rig.workload.baseline_count = 1
    c = rig.start()
    assert rig.run(c, 300) is RolloutStatus.ROLLED_BACK
    assert rig.router.calls == [Weights(90, 5, 5), Weights(100, 0, 0)]
    assert rig.workload.baseline_count == 0
    rollback = next(e for e in rig.store.events() if e.kind == "rollback")
    assert "worse than stable+baseline on errors" in rollback.message


def test_errors_are_compared_with_stable_and_baseline_latency_with_the_baseline(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, baseline=True, latency=True, stable_latency_s=0.05, canary_latency_s=0.05)
    c = rig.start()
    rig.run(c, 9)
    d = rig.store.get(c.rollout_id).last_decision
    assert d is not None
    assert d.decision.controls == ("stable+baseline", "baseline")
    errors, latency = d.decision.metrics[0], d.decision.metrics[1]
    # At 90/5/5 the baseline serves about as much as the canary, stable 18x more.
    assert errors.stable_requests > 10 * errors.canary_requests
    assert latency.stable_requests < 2 * latency.canary_requests
    assert "vs baseline" in latency.explanation


def test_latency_within_the_tolerance_is_not_harm_and_beyond_it_is(tmp_path: Path) -> None:
    # 6% slower: inside the default 10% + 1 ms, the canary is counted against the widened
    # threshold and looks like the baseline.
    within = Rig(
        tmp_path / "a", baseline=True, latency=True, stable_latency_s=0.05, canary_latency_s=0.053
    )
    c = within.start()
    within.run(c, 120)
    d = within.store.get(c.rollout_id).last_decision
    assert d is not None and d.decision.metrics[1].e_harm < 1.0
    assert within.store.get(c.rollout_id).status is not RolloutStatus.ROLLED_BACK
    # The same canary with no tolerance is caught.
    strict = Rig(
        tmp_path / "b", baseline=True, latency=True, stable_latency_s=0.05, canary_latency_s=0.053
    )
    strict.plan = build_plan(
        "local",
        {
            "min_duration": 10,
            "max_duration": 30,
            "min_requests": 20,
            "interval": 2,
            "warmup": 0,
            "judge": {"latency_tolerance": 0, "latency_tolerance_ms": 0},
        },
    )
    c = strict.start()
    assert strict.run(c, 300) is RolloutStatus.ROLLED_BACK
    thresholds = next(e for e in strict.store.events() if e.kind == "thresholds")
    assert "counted above 50 ms" in thresholds.message


def test_latency_is_not_judged_during_the_warm_up(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path,
        baseline=True,
        warmup=20,
        latency=True,
        stable_latency_s=0.05,
        canary_latency_s=0.08,
    )
    c = rig.start()
    rig.run(c, 19)
    early = rig.store.get(c.rollout_id).last_decision
    assert early is not None
    assert all(m.canary_hits == 0 for m in early.decision.metrics[1:])
    assert early.decision.metrics[0].canary_requests > 0  # errors are judged all along
    assert rig.run(c, 300) is RolloutStatus.ROLLED_BACK


def test_latency_switched_off_plainly(tmp_path: Path) -> None:
    rig = Rig(tmp_path, baseline=True, latency=True)
    rig.plan = build_plan("local", {"judge": {"latency_quantiles": []}})
    c = rig.start()
    rig.run(c, 15)
    d = rig.store.get(c.rollout_id).last_decision
    assert d is not None and [m.name for m in d.decision.metrics] == ["errors"]
    assert not d.decision.warnings
    notes = [e.message for e in rig.store.events() if e.kind == "note"]
    assert "latency not judged: latency_quantiles = [] in [rollout.judge]" in notes


def test_fixed_thresholds_are_not_called_frozen_from_stable(tmp_path: Path) -> None:
    rig = Rig(tmp_path, baseline=True, latency=True)
    rig.plan = build_plan("local", {"judge": {"latency_thresholds_s": [0.25]}})
    c = rig.start()
    rig.run(c, 15)
    thresholds = next(e for e in rig.store.events() if e.kind == "thresholds")
    assert "fixed by latency_thresholds_s" in thresholds.message
    assert "from stable" not in thresholds.message
    d = rig.store.get(c.rollout_id).last_decision
    assert d is not None and d.decision.metrics[1].name == "slower than 250 ms (fixed)"


def test_without_a_baseline_uneven_per_task_load_is_warned_about() -> None:
    plan = build_plan("local", {"baseline": False})
    warning = load_imbalance(plan, stable_tasks=2, canary_tasks=1)
    assert warning is not None and "9.5x less per canary task" in warning
    assert load_imbalance(build_plan("local", {"baseline": False, "steps": [33]}), 2, 1) is None
    assert load_imbalance(build_plan("local", {}), 2, 1) is None  # a baseline is like for like


class _Target:
    """Just enough of a Target for `begin`."""

    name = "local"

    def __init__(self, rig: Rig) -> None:
        self.router, self.workload, self.metrics = rig.router, rig.workload, rig.metrics

    def status(self) -> Status:
        def role_status(image: str, count: int) -> RoleStatus:
            return RoleStatus(
                TaskDefinitionStatus(image),
                ServiceStatus("svc", count, 0, count, "COMPLETED"),
                None,
            )

        roles = {"stable": role_status("v1", 2), "canary": role_status("v2", 2)}
        if self.workload.baseline_count:
            roles["baseline"] = role_status("v1", self.workload.baseline_count)
        return Status("local", "stack", "ok", None, roles)  # type: ignore[arg-type]


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def update(self, message: str) -> None:
        pass

    def log(self, message: str) -> None:
        self.lines.append(message)


def test_begin_starts_the_baseline_with_the_canarys_count_and_restarts_the_canary(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, baseline=True)
    store = RolloutStore(tmp_path / "s.db", "stack")
    log = _Log()
    settings: Any = None
    rollout, resumed = begin(settings, _Target(rig), store, rig.plan, log)  # type: ignore[arg-type]
    assert not resumed and rollout.plan.baseline
    assert rig.workload.baseline_count == 2 and rig.workload.canary_restarts == 1
    # What is started is said by each target's start_baseline (tests/local, tests/aws).
    # Resuming does not restart anything.
    again, resumed = begin(settings, _Target(rig), store, rig.plan, log)  # type: ignore[arg-type]
    assert resumed and again.id == rollout.id and rig.workload.canary_restarts == 1


def test_no_baseline_starts_nothing_and_warns(tmp_path: Path) -> None:
    rig = Rig(tmp_path, baseline=False)
    store = RolloutStore(tmp_path / "s.db", "stack")
    log = _Log()
    settings: Any = None
    rollout, _ = begin(settings, _Target(rig), store, rig.plan, log)  # type: ignore[arg-type]
    assert rig.workload.baseline_count == 0 and rig.workload.canary_restarts == 0
    # 2 stable and 2 canary tasks: at 5% a canary task gets 19x less traffic.
    assert any("per-task load differs by more than 2x" in line for line in log.lines)
    notes = [e.message for e in store.events(rollout.id) if e.kind == "note"]
    assert any(n.startswith("no baseline") for n in notes)
    assert any(n.startswith("per-task load differs") for n in notes)


def test_a_baseline_not_serving_is_stopped_before_the_promotion_rolls_stable(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, baseline=True)
    rig.workload.baseline_count = 1
    c = rig.start()
    assert rig.run(c, 600) is RolloutStatus.PROMOTED
    # The last step (100%) gave the baseline weight 0: it was stopped before promote().
    assert rig.workload.baseline_at_promotion == 0
    assert rig.workload.baseline_stops == 1
    assert rig.router.calls[-1] == Weights(100, 0, 0)


def test_a_rollout_ending_at_50_percent_stops_the_baseline_after_the_listener_call(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, baseline=True)
    rig.plan = build_plan(
        "local",
        {"steps": [10, 50], "min_duration": 10, "max_duration": 30, "min_requests": 20},
    )
    rig.workload.baseline_count = 1
    c = rig.start()
    assert rig.run(c, 600) is RolloutStatus.PROMOTED
    assert rig.workload.baseline_at_promotion == 1  # still serving during the promotion
    assert rig.router.calls == [Weights(80, 10, 10), Weights(0, 50, 50), Weights(100, 0, 0)]
    assert rig.workload.baseline_count == 0  # the fake refuses a stop while it has weight


def test_an_interrupted_baseline_start_stops_what_it_started(tmp_path: Path) -> None:
    rig = Rig(tmp_path, baseline=True)
    rig.workload.fail_start = KeyboardInterrupt()
    store = RolloutStore(tmp_path / "s.db", "stack")
    settings: Any = None
    with pytest.raises(KeyboardInterrupt):
        begin(settings, _Target(rig), store, rig.plan, _Log())  # type: ignore[arg-type]
    assert rig.workload.baseline_count == 0 and rig.workload.baseline_stops == 1
    assert store.active() is None  # no rollout was created


def test_a_resumed_rollout_starts_a_missing_baseline_again(tmp_path: Path) -> None:
    rig = Rig(tmp_path, baseline=True)
    store = RolloutStore(tmp_path / "s.db", "stack")
    settings: Any = None
    log = _Log()
    begin(settings, _Target(rig), store, rig.plan, log)  # type: ignore[arg-type]
    store.release(store.active().id)  # type: ignore[union-attr]
    rig.workload.baseline_count = 0  # scaled in behind the rollout's back
    _, resumed = begin(settings, _Target(rig), store, rig.plan, log)  # type: ignore[arg-type]
    assert resumed and rig.workload.baseline_count == 2
    assert any("starting it again" in line for line in log.lines)
