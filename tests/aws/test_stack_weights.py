"""Every stack update keeps the listener's live weights, even when it fails and is rolled
back (a fake CloudFormation that applies weight parameters to the listener as CloudFormation
does, and rolls a failed update back to the stack's previous values)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from canary_deploy.aws.live import weights_of
from canary_deploy.aws.stack import Stack
from canary_deploy.errors import OperationFailed
from canary_deploy.weights import Weights
from tests.aws.stubs import ERRORS, FakeListener, RecordingProgress

AFTER_PROMOTION = {  # the stack of a promotion that recorded the weights of its moment
    "ImageURIStable": "repo/app:v2",
    "ImageURICanary": "repo/app:v2",
    "StableWeight": "0",
    "CanaryWeight": "100",
    "BaselineWeight": "0",
    "DesiredCountBaseline": "0",
}
NEW_CANARY = {  # what `deploy` passes: a new canary image and the live weights
    "ImageURIStable": "repo/app:v2",
    "ImageURICanary": "repo/app:v3",
    "StableWeight": "100",
    "CanaryWeight": "0",
    "BaselineWeight": "0",
    "DesiredCountBaseline": "0",
}


class FakeCloudFormation:
    """One stack. An update whose weight parameters differ from the stack's sets the
    listener to them; a failing update is then rolled back: the listener gets the stack's
    previous weights again and the stack keeps its previous parameters."""

    def __init__(self, listener: FakeListener, parameters: dict[str, str]) -> None:
        self.listener = listener
        self.parameters = dict(parameters)
        self.status = "UPDATE_COMPLETE"
        self.updates: list[tuple[bool, dict[str, str]]] = []  # (weights-only?, values given)
        self.failing: set[int] = set()  # which updates fail (0: the first one)
        self.rollback_fails = False

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        return {
            "Stacks": [
                {
                    "StackName": StackName,
                    "StackStatus": self.status,
                    "Parameters": [
                        {"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()
                    ],
                }
            ]
        }

    def describe_stack_events(self, StackName: str, NextToken: str = "") -> dict[str, Any]:
        return {"StackEvents": []}

    def update_stack(
        self,
        StackName: str,
        Parameters: list[dict[str, Any]],
        Capabilities: list[str],
        TemplateBody: str = "",
        UsePreviousTemplate: bool = False,
    ) -> dict[str, str]:
        given = {
            p["ParameterKey"]: p["ParameterValue"] for p in Parameters if "ParameterValue" in p
        }
        self.updates.append((UsePreviousTemplate, given))
        new = {**self.parameters, **given}
        before, after = weights_of(self.parameters), weights_of(new)
        if after is not None and after != before:
            self.listener.weights = after  # CloudFormation's own ModifyListener
        if len(self.updates) - 1 in self.failing:
            if after != before and before is not None:
                self.listener.weights = before  # the rollback
            self.status = (
                "UPDATE_ROLLBACK_FAILED" if self.rollback_fails else ("UPDATE_ROLLBACK_COMPLETE")
            )
            return {"StackId": "id"}
        if new == self.parameters and not UsePreviousTemplate:
            error = {"Code": "ValidationError", "Message": "No updates are to be performed."}
            raise ClientError({"Error": error}, "UpdateStack")
        self.parameters, self.status = new, "UPDATE_COMPLETE"
        return {"StackId": "id"}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def stack(live: Weights, parameters: dict[str, str]) -> tuple[Stack, FakeCloudFormation]:
    listener = FakeListener(live)
    cf = FakeCloudFormation(listener, parameters)
    clock = Clock()
    return Stack(cf, "demo", ERRORS, listener, sleep=clock.sleep, clock=clock), cf  # type: ignore[arg-type]


def test_an_update_first_records_the_live_weights_the_stack_lags_behind() -> None:
    s, cf = stack(Weights(100, 0), AFTER_PROMOTION)
    progress = RecordingProgress()
    s.apply(NEW_CANARY, progress)
    assert cf.updates == [
        (True, {"StableWeight": "100", "CanaryWeight": "0"}),  # weights only
        (False, NEW_CANARY),
    ]
    assert cf.listener.weights == Weights(100, 0)
    assert cf.listener.calls == []  # a successful update needs nothing set again
    assert "Recording the live weights 100/0 (the stack said 0/100)" in progress.lines[0]


def test_a_stack_that_knows_the_live_weights_gets_one_update() -> None:
    s, cf = stack(Weights(100, 0), {**AFTER_PROMOTION, "StableWeight": "100", "CanaryWeight": "0"})
    s.apply(NEW_CANARY, RecordingProgress())
    assert cf.updates == [(False, NEW_CANARY)]


def test_a_failed_update_leaves_the_listener_on_the_live_weights_verified() -> None:
    s, cf = stack(Weights(100, 0), AFTER_PROMOTION)
    cf.failing = {1}  # the update itself, after the weights-only one
    progress = RecordingProgress()
    with pytest.raises(OperationFailed) as exc:
        s.apply(NEW_CANARY, progress)
    assert exc.value.message == (
        "stack demo ended in UPDATE_ROLLBACK_COMPLETE; the listener keeps its live weights 100/0"
    )
    # The stack had learnt 100/0 first: its rollback restored that, not 0/100.
    assert cf.parameters["StableWeight"] == "100"
    assert cf.listener.weights == Weights(100, 0)
    assert cf.listener.calls == [Weights(100, 0)]  # one ModifyListener, then read back
    assert progress.lines[-1] == (
        "The listener keeps its live weights 100/0 (set again and verified)"
    )


def test_a_failed_weights_only_update_is_undone_on_the_listener_and_stops_there() -> None:
    s, cf = stack(Weights(100, 0), AFTER_PROMOTION)
    cf.failing = {0}  # the weights-only update itself: its rollback restores 0/100
    with pytest.raises(OperationFailed, match="keeps its live weights 100/0"):
        s.apply(NEW_CANARY, RecordingProgress())
    assert cf.updates == [(True, {"StableWeight": "100", "CanaryWeight": "0"})]
    assert cf.listener.weights == Weights(100, 0)
    assert cf.listener.calls == [Weights(100, 0)]


def test_a_listener_that_cannot_be_set_back_is_an_error_that_says_what_to_do() -> None:
    s, cf = stack(Weights(60, 40), {**AFTER_PROMOTION, "StableWeight": "60", "CanaryWeight": "40"})
    cf.failing = {0}
    cf.listener.stuck_on = Weights(95, 5)
    with pytest.raises(OperationFailed) as exc:
        s.apply({**NEW_CANARY, "StableWeight": "60", "CanaryWeight": "40"}, RecordingProgress())
    assert "could not be set back to its live weights 60/40" in exc.value.message
    assert "the listener reports 95/5 after setting 60/40" in exc.value.message
    assert exc.value.hint is not None and "set-weights" in exc.value.hint


def test_an_update_whose_rollback_failed_says_how_to_continue_it() -> None:
    s, cf = stack(Weights(100, 0), {**AFTER_PROMOTION, "StableWeight": "100", "CanaryWeight": "0"})
    cf.failing, cf.rollback_fails = {0}, True
    with pytest.raises(OperationFailed) as exc:
        s.apply(NEW_CANARY, RecordingProgress())
    assert "ended in UPDATE_ROLLBACK_FAILED" in exc.value.message
    assert exc.value.hint is not None
    assert (
        "`aws cloudformation continue-update-rollback --stack-name demo --region us-east-1`"
        in exc.value.hint
    )
    assert cf.listener.calls == [Weights(100, 0)]


def test_a_stack_whose_rollback_failed_is_not_updated_and_the_hint_says_how_to_continue() -> None:
    s, cf = stack(Weights(100, 0), AFTER_PROMOTION)
    cf.status = "UPDATE_ROLLBACK_FAILED"
    with pytest.raises(OperationFailed) as exc:
        s.apply(NEW_CANARY, RecordingProgress())
    assert "UPDATE_ROLLBACK_FAILED" in exc.value.message
    assert exc.value.hint is not None and "continue-update-rollback --stack-name demo" in (
        exc.value.hint
    )
    assert cf.updates == [] and cf.listener.calls == []


def test_promotions_record_only_writes_the_live_values_and_nothing_else() -> None:
    s, cf = stack(Weights(100, 0), AFTER_PROMOTION)
    s.record_live({"StableWeight": "100", "CanaryWeight": "0", "BaselineWeight": "0",
                   "DesiredCountBaseline": None}, RecordingProgress())  # fmt: skip
    assert cf.updates == [(True, {"StableWeight": "100", "CanaryWeight": "0"})]
    s.record_live({"StableWeight": "100", "CanaryWeight": "0"}, RecordingProgress())
    assert len(cf.updates) == 1  # nothing lags: no update


def test_an_autoscaled_stack_records_stables_live_count_first_so_a_rollback_keeps_it() -> None:
    scaled = {**NEW_CANARY, "ImageURICanary": "repo/app:v2", "AutoScalingMetric": "cpu"}
    s, cf = stack(Weights(100, 0), {**scaled, "DesiredCountStable": "2"})
    progress = RecordingProgress()
    s.apply({**scaled, "ImageURICanary": "repo/app:v3", "DesiredCountStable": "7"}, progress)
    assert cf.updates[0] == (True, {"DesiredCountStable": "7"})  # recorded alone, first
    assert "stable task count 7 (the stack said 2)" in progress.lines[0]


def test_without_autoscaling_stables_count_is_never_recorded_ahead() -> None:
    s, cf = stack(Weights(100, 0), {**NEW_CANARY, "DesiredCountStable": "2"})
    s.apply({**NEW_CANARY, "DesiredCountStable": "3"}, RecordingProgress())
    assert cf.updates == [(False, {**NEW_CANARY, "DesiredCountStable": "3"})]
