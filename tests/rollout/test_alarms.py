"""Alarm-based rollback in the controller, against a fake alarm source: an alarm in ALARM
rolls the rollout back at once, recorded with the alarm's name and reason; OK and
INSUFFICIENT_DATA change nothing; the plan and the rollout's start check the alarms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from canary_deploy.errors import CanaryError, OperationFailed, UsageError
from canary_deploy.rollout.alarms import AlarmState, alarm_source, require_alarms
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.plan import RolloutPlan, build_plan
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.store import Command, RolloutStatus
from canary_deploy.weights import Weights
from tests.rollout.test_controller import Rig

REASON = "Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0)."


@dataclass
class FakeAlarms:
    """Alarms by name; `fail` makes every read raise, as an unreachable CloudWatch."""

    states: dict[str, AlarmState] = field(default_factory=dict)
    reads: list[tuple[str, ...]] = field(default_factory=list)
    fail: bool = False

    def set(self, name: str, state: str, reason: str = "") -> None:
        self.states[name] = AlarmState(name, state, reason)

    def alarm_states(self, names: Sequence[str]) -> dict[str, AlarmState]:
        self.reads.append(tuple(names))
        if self.fail:
            raise OperationFailed("cannot reach AWS while trying to read the alarms")
        return {n: self.states[n] for n in names if n in self.states}


def _start(rig: Rig, alarms: FakeAlarms, names: tuple[str, ...]) -> Controller:
    rig.plan = replace(rig.plan, alarms=names)
    r = start_rollout(rig.store, rig.plan, rig.metrics, canary_image="v2", clock=rig.clock)
    return Controller(
        rig.router, rig.workload, rig.metrics, rig.store, r.id, clock=rig.clock, alarms=alarms
    )


def test_an_alarm_in_alarm_rolls_back_at_once_with_its_name_and_reason(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    alarms = FakeAlarms()
    alarms.set("api-5xx", "OK")
    alarms.set("api-p99", "OK")
    c = _start(rig, alarms, ("api-5xx", "api-p99"))
    assert rig.run(c, 4) is RolloutStatus.RUNNING
    assert rig.router.weights == Weights(95, 5)
    alarms.set("api-p99", "ALARM", REASON)
    result = c.tick()
    assert result.rollout.status is RolloutStatus.ROLLED_BACK
    assert rig.router.weights == Weights(100, 0)
    assert result.rollout.reason == f"CloudWatch alarm api-p99 is in ALARM: {REASON}"
    (event,) = [e for e in rig.store.events(c.rollout_id) if e.kind == "rollback"]
    assert event.message == f"CloudWatch alarm api-p99 is in ALARM: {REASON}"
    assert event.data == {"alarms": [{"name": "api-p99", "state": "ALARM", "reason": REASON}]}
    # One read of every watched alarm per tick.
    assert set(alarms.reads) == {("api-5xx", "api-p99")}


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_alarms_that_are_not_in_alarm_change_nothing(tmp_path: Path, state: str) -> None:
    with_alarm, without = Rig(tmp_path / "a"), Rig(tmp_path / "b")
    alarms = FakeAlarms()
    alarms.set("api-5xx", state)
    c = _start(with_alarm, alarms, ("api-5xx",))
    plain = without.start()
    for rig, controller in ((with_alarm, c), (without, plain)):
        rig.run(controller, 300)
    # The same steps as a rollout that watches no alarm: it promotes.
    assert with_alarm.router.calls == without.router.calls
    assert with_alarm.store.get(c.rollout_id).status is RolloutStatus.PROMOTED
    assert without.store.get(plain.rollout_id).status is RolloutStatus.PROMOTED
    assert not [e for e in with_alarm.store.events(c.rollout_id) if e.kind == "rollback"]


def test_a_paused_rollout_rolls_back_on_an_alarm_too(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    alarms = FakeAlarms()
    alarms.set("api-5xx", "OK")
    c = _start(rig, alarms, ("api-5xx",))
    rig.run(c, 2)
    rig.store.send(c.rollout_id, Command.PAUSE, actor="alice")
    assert c.tick().rollout.status is RolloutStatus.PAUSED
    alarms.set("api-5xx", "ALARM", REASON)
    assert c.tick().rollout.status is RolloutStatus.ROLLED_BACK
    assert rig.router.weights == Weights(100, 0)


def test_several_alarms_in_alarm_are_all_named(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    alarms = FakeAlarms()
    alarms.set("b-alarm", "ALARM", "reason b")
    alarms.set("a-alarm", "ALARM", "reason a")
    c = _start(rig, alarms, ("b-alarm", "a-alarm"))
    r = c.tick().rollout
    assert r.status is RolloutStatus.ROLLED_BACK
    assert r.reason == "CloudWatch alarms in ALARM: a-alarm: reason a; b-alarm: reason b"


def test_a_failed_alarm_read_fails_the_tick_and_no_step_advances(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    alarms = FakeAlarms()
    alarms.set("api-5xx", "OK")
    c = _start(rig, alarms, ("api-5xx",))
    rig.run(c, 2)
    step = rig.store.get(c.rollout_id).step
    alarms.fail = True
    for _ in range(40):
        rig.metrics.record(int(rig.clock.t))
        rig.clock.advance(0.5)
        with pytest.raises(CanaryError):
            c.tick()
    assert rig.store.get(c.rollout_id).step == step
    # An abort still goes through: a rollout rolling back reads no alarm.
    rig.store.send(c.rollout_id, Command.ABORT, actor="alice")
    assert c.tick().rollout.status is RolloutStatus.ROLLED_BACK


def test_a_controller_without_an_alarm_source_refuses_a_plan_with_alarms(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.plan = replace(rig.plan, alarms=("api-5xx",))
    r = start_rollout(rig.store, rig.plan, rig.metrics, canary_image="v2", clock=rig.clock)
    with pytest.raises(OperationFailed, match="cannot read them"):
        rig.controller(r.id).tick()


def test_the_start_fails_fast_naming_the_alarms_that_do_not_exist() -> None:
    alarms = FakeAlarms()
    alarms.set("api-5xx", "OK")
    require_alarms(alarms, ("api-5xx",))
    with pytest.raises(UsageError, match="no CloudWatch alarm named api-p99, typo") as info:
        require_alarms(alarms, ("api-5xx", "api-p99", "typo"))
    assert info.value.hint is not None and "put-metric-alarm" in info.value.hint
    with pytest.raises(UsageError, match="an AWS feature"):
        require_alarms(None, ("api-5xx",))
    require_alarms(None, ())  # nothing to watch: nothing to check


def test_alarm_source_is_the_targets_alarms_attribute() -> None:
    class WithAlarms:
        alarms = FakeAlarms()

    assert alarm_source(WithAlarms()) is WithAlarms.alarms
    assert alarm_source(object()) is None


def test_the_plan_carries_the_alarms_and_refuses_them_on_the_local_target() -> None:
    plan = build_plan("aws", {"alarms": ["api-5xx", "api-p99"]})
    assert plan.alarms == ("api-5xx", "api-p99")
    assert RolloutPlan.from_dict(plan.to_dict()) == plan
    older = plan.to_dict()
    del older["alarms"]  # a rollout stored before alarms existed
    assert RolloutPlan.from_dict(older).alarms == ()
    assert build_plan("aws", {}).alarms == ()
    with pytest.raises(UsageError, match="an AWS feature") as info:
        build_plan("local", {"alarms": ["api-5xx"]})
    assert info.value.hint is not None and "--target aws" in info.value.hint
    with pytest.raises(UsageError, match="alarms: each alarm once, got api-5xx twice"):
        build_plan("aws", {"alarms": ["api-5xx", "api-5xx"]})
