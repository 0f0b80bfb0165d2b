"""What every stack update passes so that it reverts nothing changed by API calls: the live
weights and the baseline's live task count."""

from __future__ import annotations

from typing import Any

from canary_deploy.aws.promotion import live_parameters
from canary_deploy.aws.stack import StackInfo
from canary_deploy.backend import Role, ServiceStatus
from canary_deploy.errors import OperationFailed
from canary_deploy.weights import Weights
from tests.aws.stubs import RecordingProgress


class FakeEcs:
    """describe_services only, answering `services` or raising `error`."""

    def __init__(self, services: dict[Role, ServiceStatus], error: Exception | None = None) -> None:
        self.services = services
        self.error = error

    def describe_services(self) -> dict[Role, ServiceStatus]:
        if self.error is not None:
            raise self.error
        return self.services


def info(parameters: dict[str, str], *, baseline: bool = True) -> StackInfo:
    outputs = {"ServiceBaselineName": "demo-baseline"} if baseline else {}
    return StackInfo("demo", "UPDATE_COMPLETE", None, parameters, outputs)


def live(stack: StackInfo, weights: Weights, ecs: FakeEcs) -> tuple[dict[str, Any], list[str]]:
    progress = RecordingProgress()
    return live_parameters(stack, weights, ecs, progress), progress.lines  # type: ignore[arg-type]


def test_during_a_rollout_the_update_keeps_the_baselines_tasks_and_weight() -> None:
    ecs = FakeEcs({"baseline": ServiceStatus("demo-baseline", 2, 0, 2, "COMPLETED")})
    params, lines = live(info({"DesiredCountBaseline": "0"}), Weights(90, 5, 5), ecs)
    assert params == {
        "StableWeight": "90",
        "CanaryWeight": "5",
        "BaselineWeight": "5",
        "DesiredCountBaseline": "2",
    }
    assert lines == [
        "Keeping the baseline's 2 live task(s) in the stack update (a rollout is running)"
    ]


def test_outside_a_rollout_the_update_says_zero_tasks_and_weight() -> None:
    ecs = FakeEcs({"baseline": ServiceStatus("demo-baseline", 0, 0, 0, "COMPLETED")})
    params, lines = live(info({"DesiredCountBaseline": "2"}), Weights(95, 5), ecs)
    assert (params["BaselineWeight"], params["DesiredCountBaseline"]) == ("0", "0")
    assert lines == []


def test_an_unreadable_count_keeps_the_stacks_value_and_says_so() -> None:
    ecs = FakeEcs({}, OperationFailed("AWS throttled the request"))
    params, lines = live(info({"DesiredCountBaseline": "2"}), Weights(95, 5), ecs)
    assert params["DesiredCountBaseline"] is None  # UsePreviousValue
    assert lines == [
        "Could not read the baseline's task count (AWS throttled the request); keeping it"
    ]


def test_a_stack_from_before_the_baseline_gets_it_with_zero_tasks() -> None:
    ecs = FakeEcs({}, AssertionError("no baseline service to read"))
    params, _ = live(info({}, baseline=False), Weights(75, 25), ecs)
    assert params == {
        "StableWeight": "75",
        "CanaryWeight": "25",
        "BaselineWeight": "0",
        "DesiredCountBaseline": "0",
    }


def test_with_autoscaling_the_update_keeps_the_count_autoscaling_gave_stable() -> None:
    ecs = FakeEcs({"stable": ServiceStatus("demo-stable", 5, 0, 5, "COMPLETED")})
    stack = info({"AutoScalingMetric": "cpu", "DesiredCountStable": "2"}, baseline=False)
    stack = StackInfo(
        stack.name, stack.status, None, stack.parameters, {"ServiceBaselineName": "b"}
    )
    params, lines = live(stack, Weights(95, 5), ecs)
    assert params["DesiredCountStable"] == "5"
    assert lines == [
        "Keeping stable's 5 live task(s) in the stack update (autoscaling sets its count)"
    ]


def test_without_autoscaling_stables_count_is_the_settings_own() -> None:
    ecs = FakeEcs({"stable": ServiceStatus("demo-stable", 5, 0, 5, "COMPLETED")})
    params, _ = live(
        info({"AutoScalingMetric": "off", "DesiredCountStable": "2"}), Weights(95, 5), ecs
    )
    assert "DesiredCountStable" not in params
