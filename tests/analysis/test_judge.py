"""The judge's verdicts as a controller sees them."""

from __future__ import annotations

import json
import random

import pytest

from canary_deploy.analysis import (
    BurstGuardConfig,
    Decision,
    Judge,
    JudgeConfig,
    TaskCounts,
    Verdict,
)

from .helpers import batch, binomial


def run(judge: Judge, batches: int, stable: tuple[int, int], canary: tuple[int, int]) -> Decision:
    decision = judge.update(batch(stable, canary))
    for _ in range(batches - 1):
        if decision.verdict is not Verdict.CONTINUE:
            break
        decision = judge.update(batch(stable, canary))
    return decision


def test_zero_traffic_never_decides_and_shows_no_rates():
    judge = Judge(JudgeConfig(min_canary_requests=0))
    decision = run(judge, 50, (0, 0), (0, 0))
    assert decision.verdict is Verdict.CONTINUE
    errors = decision.metrics[0]
    assert errors.canary_rate is None and errors.stable_rate is None
    assert errors.canary_interval == (0.0, 1.0)
    assert errors.e_harm == pytest.approx(1.0) and errors.e_non_inferiority == pytest.approx(1.0)


def test_no_errors_on_either_side_never_promotes_and_ends_inconclusive_at_the_cap():
    judge = Judge(JudgeConfig(max_canary_requests=2_000))
    decision = run(judge, 100, (950, 0), (50, 0))
    assert decision.verdict is Verdict.INCONCLUSIVE
    assert decision.canary_requests == 2_000
    assert "human" in decision.explanation


def test_canary_failing_every_request_is_rolled_back_within_a_few_looks():
    judge = Judge()
    decision = run(judge, 20, (190, 2), (10, 10))
    assert decision.verdict is Verdict.ROLLBACK
    assert decision.canary_requests <= 60
    assert decision.metrics[0].canary_rate == 1.0
    assert "errors" in decision.explanation


def test_both_versions_failing_everything_is_never_promoted():
    judge = Judge(JudgeConfig(max_canary_requests=5_000))
    decisions = [judge.update(batch((190, 190), (10, 10))) for _ in range(100)]
    assert all(d.verdict is not Verdict.PROMOTE for d in decisions)
    assert all(d.verdict is not Verdict.ROLLBACK for d in decisions)
    assert any("not promoting" in w for w in decisions[-1].warnings)


def test_nothing_is_decided_before_the_minimum_canary_requests():
    judge = Judge(JudgeConfig(min_canary_requests=100))
    first = judge.update(batch((950, 0), (50, 25)))
    assert first.verdict is Verdict.CONTINUE
    assert "collecting data" in first.explanation
    assert judge.update(batch((950, 0), (50, 25))).verdict is Verdict.ROLLBACK


def test_canary_as_good_as_stable_is_promoted_and_one_at_the_margin_is_not():
    good = run(Judge(), 200, (1_900, 19), (100, 1))
    assert good.verdict is Verdict.PROMOTE
    assert all(m.non_inferior for m in good.metrics)
    # Exactly at the margin (1.5x): the non-inferiority evidence only shrinks.
    at_margin = run(Judge(), 100, (1_900, 20), (100, 3))
    assert at_margin.verdict is not Verdict.PROMOTE
    assert at_margin.metrics[0].e_non_inferiority < 1.0


def test_doubled_error_rate_is_rolled_back_with_its_evidence():
    decision = run(Judge(), 100, (1_900, 19), (100, 2))
    assert decision.verdict is Verdict.ROLLBACK
    errors = decision.metrics[0]
    assert errors.harmful and errors.e_harm >= errors.harm_threshold
    lo, hi = errors.canary_interval
    assert lo < errors.canary_rate < hi  # type: ignore[operator]
    assert errors.canary_hits == 2 * errors.canary_requests // 100


def test_terminal_verdict_sticks():
    judge = Judge()
    assert run(judge, 100, (1_900, 19), (100, 2)).verdict is Verdict.ROLLBACK
    assert judge.update(batch((1_900, 19), (100, 0))).verdict is Verdict.ROLLBACK


def test_latency_thresholds_are_frozen_before_the_analysis_and_judged():
    judge = Judge()
    assert judge.thresholds_s == ()
    judge.freeze_thresholds([0.25, 0.8])
    assert judge.thresholds_s == (0.25, 0.8)
    # Errors equal, canary 3x more often slower than stable's p99.
    decision = None
    for _ in range(200):
        decision = judge.update(batch((1_900, 19), (100, 1), slower=((95, 19), (5, 3))))
        if decision.verdict is not Verdict.CONTINUE:
            break
    assert decision is not None and decision.verdict is Verdict.ROLLBACK
    names = [m.name for m in decision.metrics if m.harmful]
    assert names == ["slower than 800 ms (stable p99)"]
    with pytest.raises(ValueError, match="before the first batch"):
        judge.freeze_thresholds([0.3])


def test_batch_must_report_one_count_per_frozen_threshold():
    judge = Judge()
    judge.freeze_thresholds([0.25, 0.8])
    with pytest.raises(ValueError, match="2 frozen latency thresholds"):
        judge.update(batch((100, 1), (10, 0), slower=((5,), (1,))))
    with pytest.raises(ValueError, match="has 0 slower_than counts"):
        judge.update(batch((100, 1), (10, 0)))
    # Rejected batches were not counted.
    assert judge.update(batch((0, 0), (0, 0))).metrics[0].stable_requests == 0


def test_without_frozen_thresholds_the_decision_says_latency_is_not_judged():
    decision = Judge().update(batch((1_900, 19), (100, 1)))
    assert [m.name for m in decision.metrics] == ["errors"]
    assert any("latency not judged" in w for w in decision.warnings)
    assert decision.metrics[0].harm_threshold == pytest.approx(20.0)  # all of alpha to errors


def test_serialized_judge_continues_exactly():
    rng = random.Random(5)
    stream = [
        batch(
            (n_s := 1_800 + rng.randrange(200), binomial(rng, n_s, 0.01)),
            (n_c := 80 + rng.randrange(40), binomial(rng, n_c, 0.015)),
            slower=(
                (binomial(rng, n_s, 0.05), binomial(rng, n_s, 0.01)),
                (binomial(rng, n_c, 0.05), binomial(rng, n_c, 0.01)),
            ),
        )
        for _ in range(40)
    ]
    original = Judge()
    original.freeze_thresholds([0.2, 0.5])
    for b in stream[:20]:
        original.update(b)
    restored = Judge.from_dict(json.loads(json.dumps(original.to_dict())))
    for b in stream[20:]:
        assert restored.update(b) == original.update(b)
    assert restored.to_dict() == original.to_dict()


def test_decision_is_json_ready():
    decision = Judge().update(batch((1_900, 19), (100, 1)))
    doc = json.loads(json.dumps(decision.to_dict()))
    assert doc["verdict"] == "continue"
    assert doc["metrics"][0]["name"] == "errors"
    assert doc["metrics"][0]["canary_hits"] == 1
    assert "harm e=" in doc["metrics"][0]["explanation"]


def test_config_round_trips_and_rejects_nonsense():
    cfg = JudgeConfig(
        alpha=0.01, latency_thresholds_s=(0.3,), burst_guard=BurstGuardConfig(action="report")
    )
    assert JudgeConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="alpha"):
        JudgeConfig(alpha=1.5)
    with pytest.raises(ValueError, match="harm_ratios must all be > 1"):
        JudgeConfig(harm_ratios=(0.5,), harm_weights=(1.0,))
    with pytest.raises(ValueError, match="unknown judge settings: colour"):
        JudgeConfig.from_dict({"colour": "blue"})


def test_false_rollbacks_under_the_null_stay_below_a_generous_bound():
    # 200 canaries exactly as good as stable (1% errors), 1-minute looks of 2,000
    # requests at a 5% share, up to 100 looks. alpha = 5%; allow for Monte Carlo noise.
    rng = random.Random(20261128)
    rollbacks = 0
    for _ in range(200):
        judge = Judge()
        for _ in range(100):
            n_c = binomial(rng, 2_000, 0.05)
            d = judge.update(
                batch(
                    (2_000 - n_c, binomial(rng, 2_000 - n_c, 0.01)), (n_c, binomial(rng, n_c, 0.01))
                )
            )
            if d.verdict is not Verdict.CONTINUE:
                rollbacks += d.verdict is Verdict.ROLLBACK
                break
    assert rollbacks / 200 <= 0.10


# ---- the burst guard


def test_one_interval_burst_is_held_with_a_warning_then_confirmed_by_more_data():
    judge = Judge(JudgeConfig(promote_alpha=1e-9))  # keep early promotion out of the way
    for _ in range(40):  # a healthy start: 4,000 canary requests, stable-like errors
        judge.update(batch((1_900, 19), (100, 1)))
    # 30 errors in one interval: fewer than half the canary's 70, yet all of the evidence.
    burst = judge.update(batch((1_900, 19), (100, 30)))
    assert burst.verdict is Verdict.CONTINUE
    assert burst.metrics[0].harmful
    assert any("one interval with 30 canary hits carries the evidence" in w for w in burst.warnings)
    assert "burst" in burst.explanation
    # Back to normal: the single burst never turns into a rollback.
    calm = run(judge, 20, (1_900, 19), (100, 1))
    assert calm.verdict is Verdict.CONTINUE
    # The canary fails again: the evidence now stands without any one interval.
    again = run(judge, 10, (1_900, 19), (100, 15))
    assert again.verdict is Verdict.ROLLBACK


def test_burst_guard_in_report_mode_rolls_back_but_flags_it():
    judge = Judge(JudgeConfig(burst_guard=BurstGuardConfig(action="report")))
    for _ in range(10):
        judge.update(batch((1_900, 19), (100, 1)))
    decision = judge.update(batch((1_900, 19), (100, 30)))
    assert decision.verdict is Verdict.ROLLBACK
    assert any("burst suspected" in w for w in decision.warnings)


def test_one_bad_task_among_several_holds_the_rollback_and_names_the_task():
    judge = Judge()
    healthy = {"task-a": TaskCounts(50, 0), "task-b": TaskCounts(50, 0)}
    sick = {"task-a": TaskCounts(50, 8), "task-b": TaskCounts(50, 0)}
    decision = None
    for i in range(12):
        tasks = sick if i % 2 else healthy
        errors = sum(t.errors for t in tasks.values())
        decision = judge.update(batch((1_900, 19), (100, errors), tasks=tasks))
    assert decision is not None
    assert decision.metrics[0].harmful
    assert decision.verdict is Verdict.CONTINUE
    assert any(
        "task 'task-a' carries the evidence" in w and "produced 48 of the canary's 48 errors" in w
        for w in decision.warnings
    )


def test_single_canary_task_cannot_be_blamed_on_itself():
    judge = Judge()
    tasks = {"only": TaskCounts(100, 3)}
    decision = None
    for _ in range(12):
        decision = judge.update(batch((1_900, 19), (100, 3), tasks=tasks))
        if decision.verdict is not Verdict.CONTINUE:
            break
    assert decision is not None and decision.verdict is Verdict.ROLLBACK


def test_a_burst_on_errors_does_not_hide_a_clean_latency_regression():
    judge = Judge()
    judge.freeze_thresholds([0.8])
    decision = None
    for i in range(200):
        canary_errors = 30 if i == 0 else 1
        decision = judge.update(batch((1_900, 19), (100, canary_errors), slower=((19,), (3,))))
        if decision.verdict is not Verdict.CONTINUE:
            break
    assert decision is not None and decision.verdict is Verdict.ROLLBACK
    errors, latency = decision.metrics
    assert errors.harmful and errors.burst is not None  # held on its own
    assert latency.harmful and latency.burst is None  # but this one stands


def _two_tasks(a: tuple[int, int], b: tuple[int, int]) -> dict[str, TaskCounts]:
    return {"task-a": TaskCounts(*a), "task-b": TaskCounts(*b)}


def test_a_canary_whose_errors_all_come_from_one_of_two_tasks_is_held():
    judge = Judge()
    decisions = [
        judge.update(batch((1_900, 19), (100, 3), tasks=_two_tasks((50, 3), (50, 0))))
        for _ in range(40)
    ]
    assert decisions[-1].metrics[0].harmful
    assert all(d.verdict is Verdict.CONTINUE for d in decisions)
    assert any("without it e=" in w and "'task-a'" in w for w in decisions[-1].warnings)


def test_a_canary_bad_on_both_tasks_is_rolled_back():
    judge = Judge()
    decision = None
    for _ in range(60):
        decision = judge.update(batch((1_900, 19), (100, 4), tasks=_two_tasks((50, 2), (50, 2))))
        if decision.verdict is not Verdict.CONTINUE:
            break
    assert decision is not None and decision.verdict is Verdict.ROLLBACK


def test_task_evidence_survives_a_state_round_trip():
    stream = [
        batch((1_900, 19 + i % 3), (100, 2 + i % 2), tasks=_two_tasks((50, 2), (50, i % 2)))
        for i in range(30)
    ]
    original = Judge()
    for b in stream[:15]:
        original.update(b)
    restored = Judge.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored.to_dict() == original.to_dict()
    for b in stream[15:]:
        assert restored.update(b) == original.update(b)


def test_a_state_saved_with_the_old_task_counts_still_loads():
    judge = Judge()
    judge.update(batch((1_900, 19), (100, 1), tasks=_two_tasks((50, 1), (50, 0))))
    doc = judge.to_dict()
    doc["tasks"] = {"task-a": [50, 1], "task-b": [50, 0]}  # before leave-one-task-out
    doc["config"]["burst_guard"]["max_task_share"] = 0.8  # the retired setting
    restored = Judge.from_dict(json.loads(json.dumps(doc)))
    assert restored.to_dict()["tasks"] == {}
    restored.update(batch((1_900, 19), (100, 1), tasks=_two_tasks((50, 1), (50, 0))))
    assert set(restored.to_dict()["tasks"]) == {"task-a", "task-b"}


def test_restarting_tasks_are_tracked_in_bounded_state():
    judge = Judge()
    for i in range(40):  # every batch a new pair of task names, as after restarts
        tasks = {f"a-{i}": TaskCounts(50, 1), f"b-{i}": TaskCounts(50, 0)}
        judge.update(batch((1_900, 19), (100, 1), tasks=tasks))
    tracked = judge.to_dict()["tasks"]
    assert len(tracked) == 16
    assert {"a-39", "b-39"} <= set(tracked)
