"""CloudWatch timing (issue 11 item 10) against the fakes: each batch belongs to the step
whose weights produced it, a step's durations are measured on its own data, datapoints
that arrive late are read again and fed once, and the controller ticks at the plan's
pace (what one hour of a rollout costs in API calls)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from canary_deploy.rollout import loop
from canary_deploy.rollout.controller import Controller, TickResult
from canary_deploy.rollout.plan import RolloutPlan, build_plan
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.store import Command, Rollout, RolloutStatus, RolloutStore
from canary_deploy.weights import Weights
from tests.rollout.fakes import Clock, FakeMetrics, FakeRouter, FakeTarget, FakeWorkload


@dataclass
class LateMetrics(FakeMetrics):
    """CloudWatch-like: one second in ten shows nothing until it is `complete_after_s`
    old (its datapoint arrives late)."""

    clock: Clock = field(default_factory=Clock)
    complete_after_s: float = 300.0

    def visible(self, second: int, requests: int, errors: int) -> tuple[int, int]:
        if second % 10 or self.clock() - (second + 1) >= self.complete_after_s:
            return requests, errors
        return 0, 0


class AwsRig:
    """A rollout on AWS timing (1-minute batches, 3 minutes of lag), ticked every 5 s. At
    20 requests/s a healthy canary's steps end at their max duration without a verdict
    against it (the judge's cap of 10,000 canary requests is not reached)."""

    def __init__(self, tmp_path: Path, plan: RolloutPlan, **metrics: Any) -> None:
        self.clock = Clock()
        self.router = FakeRouter()
        self.workload = FakeWorkload(router=self.router)
        metrics.setdefault("rps", 20)
        # The fakes' default seed (7) draws, at this rate, one of the false rollbacks alpha
        # allows (the canary 8/312 against stable's 47/6168): another seed.
        metrics.setdefault("seed", 1)
        self.metrics = LateMetrics(self.router, clock=self.clock, **metrics)
        self.store = RolloutStore(tmp_path / "state.db", "stack")
        self.plan = plan
        self.rollout = start_rollout(
            self.store, plan, self.metrics, canary_image="v2", clock=self.clock
        )
        self.controller = Controller(
            self.router, self.workload, self.metrics, self.store, self.rollout.id, clock=self.clock
        )
        self.seen: list[Rollout] = []

    def run(self, seconds: float) -> Rollout:
        r = self.store.get(self.rollout.id)
        end = self.clock.t + seconds
        while self.clock.t < end and not r.status.terminal:
            for second in range(int(self.clock.t), int(self.clock.t) + 5):
                self.metrics.record(second)
            self.clock.advance(5)
            r = self.controller.tick().rollout
            self.seen.append(r)
        return r

    def events(self, kind: str) -> list[Any]:
        return [e for e in self.store.events(self.rollout.id) if e.kind == kind]

    def served(self, start: float, end: float, group: str = "canary") -> int:
        """What the group really served in [start, end), late or not."""
        return sum(self.metrics._second(s)[group][0] for s in range(int(start), int(end)))  # type: ignore[index]


def aws_plan(steps: list[int], **settings: Any) -> RolloutPlan:
    return build_plan("aws", {"steps": steps, "baseline": False, **settings})


def test_batches_belong_to_the_step_whose_weights_served_them(tmp_path: Path) -> None:
    plan = aws_plan([5, 50, 100], min_duration=300, max_duration=900, min_requests=500)
    rig = AwsRig(tmp_path, plan, complete_after_s=0)  # no late data: exact counts
    assert rig.run(3 * 3600).status is RolloutStatus.PROMOTED
    applied = {e.data["to"]["canary"]: e.t for e in rig.events("weights") if e.data}
    edges = {w: math.ceil(t / 60) * 60 for w, t in applied.items()}
    # No batch spans the moment a step's weights went on (at the next minute's edge).
    for e in rig.events("batch") + rig.events("decision"):
        start, end = e.data["window"]
        assert not any(start < edge < end for edge in edges.values()), (start, end)
    # A step counts the canary requests of its own data only, never the 3 lagging
    # minutes of the step before.
    for r in rig.seen:
        weights = plan.weights(r.step)
        if r.status is RolloutStatus.RUNNING and r.applied_weights == weights:
            edge = edges[weights.canary]
            assert r.step_canary_requests == rig.served(edge, max(edge, r.cursor))


def test_the_last_step_passes_only_once_its_own_minutes_are_in(tmp_path: Path) -> None:
    # 100% has nothing to compare the canary with (no stable or baseline traffic): a soak
    # whose own 5 minutes must be in. Before, it promoted 5 wall-clock minutes after its
    # weights went on, on evidence from the 50% step's lagging minutes.
    plan = aws_plan([50, 100], min_duration=300, max_duration=900, min_requests=0)
    # Errors frequent enough for the judge to show non-inferiority at 50% within minutes.
    rig = AwsRig(tmp_path, plan, rps=100, stable_error_rate=0.05, canary_error_rate=0.05)
    assert rig.run(3 * 3600).status is RolloutStatus.PROMOTED
    assert any(e.message.startswith("promote") for e in rig.events("decision"))
    on = next(e.t for e in rig.events("weights") if e.data and e.data["to"]["canary"] == 100)
    passed = next(e.t for e in rig.events("step") if "last step passed" in e.message)
    assert passed >= on + 300 + plan.metrics_lag_s
    soaked = [e for e in rig.events("batch") if "nothing to compare" in e.message]
    assert soaked and all(e.data["window"][0] >= on for e in soaked)


def test_a_soak_step_does_not_pass_a_canary_that_fails_half_its_requests(
    tmp_path: Path,
) -> None:
    plan = aws_plan([100], min_duration=300, max_duration=900, min_requests=0)
    rig = AwsRig(tmp_path, plan, canary_error_rate=0.6)
    # Already at 0/100 when it starts: no batch with stable traffic to compare with.
    rig.router.weights = Weights(0, 100)
    r = rig.run(3600)
    assert r.status is RolloutStatus.PAUSED
    assert r.reason is not None
    assert re.search(r"the canary failed \d+% of its \d+ requests at 100%", r.reason)


@pytest.mark.parametrize("reread", [0, 180])
def test_late_datapoints_are_read_again_and_fed_once(tmp_path: Path, reread: int) -> None:
    plan = aws_plan([5], min_duration=3000, max_duration=3600, min_requests=0, reread=reread)
    rig = AwsRig(tmp_path, plan)
    r = rig.run(1800)
    assert r.status is RolloutStatus.RUNNING
    compared = r.judge["compared"]
    complete = rig.served(r.created_at, r.cursor - reread)
    everything = rig.served(r.created_at, r.cursor)
    batches = len(rig.events("batch")) + len(rig.events("decision"))
    if reread:
        # Every request of the windows read again is in, none twice; one more read a batch.
        assert complete <= compared <= everything
        assert len(rig.metrics.reads) == 2 * batches - 1
        assert r.fed_windows and r.fed_windows[0].start == r.cursor - reread
    else:
        # Without: what arrived after the first read is lost, and one read a batch.
        assert compared < 0.95 * everything
        assert len(rig.metrics.reads) == batches and r.fed_windows == ()


class CountingRouter(FakeRouter):
    reads: int = 0

    def get_weights(self) -> Weights:
        self.reads += 1
        return super().get_weights()


@dataclass
class CountingMetrics(FakeMetrics):
    quantile_reads: int = 0

    def quantiles(self, role: Any, start: float, end: float, qs: Any) -> Any:
        self.quantile_reads += 1
        return super().quantiles(role, start, end, qs)


class _Hour(Exception):
    pass


def an_hour_of_rollout(tmp_path: Path, plan: RolloutPlan) -> dict[str, int]:
    """`loop.run` for one hour of a rollout (the default AWS plan, a baseline, latency
    judged): how often each Protocol method that is an AWS API call was called."""
    clock = Clock()
    router = CountingRouter()
    router.reads = 0
    workload = FakeWorkload(router=router, baseline_count=1)
    metrics = CountingMetrics(router, rps=20, latency=True)
    target = FakeTarget(SimpleNamespace(router=router, workload=workload, metrics=metrics))
    store = RolloutStore(tmp_path / "state.db", "stack")
    r = start_rollout(store, plan, metrics, canary_image="v2", clock=clock)
    metrics.reads.clear()
    end = clock.t + 3600

    def sleep(seconds: float) -> None:
        metrics.record(int(clock.t))
        clock.advance(seconds)
        if clock.t > end:
            raise _Hour

    view = SimpleNamespace(show=lambda result, quantiles: None)
    with pytest.raises(_Hour):
        loop.run(target, store, r, view, sleep=sleep, clock=clock)  # type: ignore[arg-type]
    assert not store.get(r.id).status.terminal, "the hour is a rollout's hour"
    return {
        "DescribeListeners": router.reads,
        "ModifyListener": len(router.calls),
        "GetMetricData (counts)": len(metrics.reads),
        "GetMetricData (p99 view)": metrics.quantile_reads,
        "DescribeTargetHealth": workload.health_reads,
    }


def test_an_hour_of_rollout_on_aws_timing_reads_the_listener_720_times(tmp_path: Path) -> None:
    plan = build_plan("aws", {"max_duration": 900})
    assert (plan.tick_s, plan.reread_s) == (5.0, 180.0)
    calls = an_hour_of_rollout(tmp_path, plan)
    assert calls["DescribeListeners"] <= 3600 / 5 + 1  # was 14,400 (4 a second)
    # One read of the new minute and one of the 3 minutes before it, at each batch (was
    # two: the canary's widened latency thresholds were read on their own).
    assert calls["GetMetricData (counts)"] <= 2 * 60
    # Target health only around step changes (a few in the hour), never every tick.
    assert 1 <= calls["DescribeTargetHealth"] <= 2 * len(plan.steps)


def test_the_local_target_ticks_4_times_a_second_and_reads_each_batch_once() -> None:
    plan = build_plan("local")
    assert (plan.tick_s, plan.reread_s) == (0.25, 0.0)


def test_service_run_sleeps_the_plans_tick(tmp_path: Path) -> None:
    clock = Clock()
    router = FakeRouter()
    metrics = FakeMetrics(router)
    target = FakeTarget(
        SimpleNamespace(router=router, workload=FakeWorkload(router=router), metrics=metrics)
    )
    store = RolloutStore(tmp_path / "state.db", "stack")
    plan = build_plan("local", {"tick": "3s", "steps": [5]})
    r = start_rollout(store, plan, metrics, canary_image="v2", clock=clock)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        store.send(r.id, Command.ABORT, actor="test")

    shown: list[TickResult] = []
    view = SimpleNamespace(show=lambda result, quantiles: shown.append(result))
    final = loop.run(target, store, r, view, sleep=sleep, clock=clock)  # type: ignore[arg-type]
    assert final.status is RolloutStatus.ROLLED_BACK
    assert slept == [3.0]
