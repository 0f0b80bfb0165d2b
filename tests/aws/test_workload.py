"""ECS services: waiting for a steady deployment, failures say why (stubbed ECS)."""

from __future__ import annotations

from typing import Any

import pytest

from canary_deploy.aws.health import TargetHealth
from canary_deploy.aws.outputs import NoBaseline
from canary_deploy.aws.promotion import StackWorkload
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.errors import OperationFailed, UsageError
from tests.aws.stubs import ERRORS, OUTPUTS, OUTPUTS_TWO_GROUPS, RecordingProgress, stubbed
from tests.aws.test_status import service


def services(stable_running: int, stable_state: str, reason: str = "") -> dict[str, Any]:
    deployment = {"status": "PRIMARY", "rolloutState": stable_state, "rolloutStateReason": reason}
    return {
        "services": [
            service("demo-stable", stable_running, 0, 2, deployment),
            service("demo-canary", 1, 0, 1, {"status": "PRIMARY", "rolloutState": "COMPLETED"}),
        ]
    }


def test_wait_steady_follows_the_deployment_until_complete() -> None:
    client, stub = stubbed("ecs")
    progress = RecordingProgress()
    stub.add_response("describe_services", services(1, "IN_PROGRESS"))
    stub.add_response("describe_services", services(2, "COMPLETED"))
    with stub:
        EcsWorkload(client, lambda: OUTPUTS, ERRORS, sleep=lambda _: None).wait_steady(
            "stable", progress
        )
        stub.assert_no_pending_responses()
    assert progress.updates[0] == "demo-stable: 1/2 running, IN_PROGRESS"


def test_wait_steady_reports_a_failed_deployment() -> None:
    client, stub = stubbed("ecs")
    stub.add_response(
        "describe_services", services(2, "FAILED", "tasks failed to start: CannotPullContainer")
    )
    with stub, pytest.raises(OperationFailed, match="CannotPullContainer"):
        EcsWorkload(client, lambda: OUTPUTS, ERRORS, sleep=lambda _: None).wait_steady(
            "stable", RecordingProgress()
        )


def test_scale_canary_sets_the_desired_count() -> None:
    client, stub = stubbed("ecs")
    stub.add_response(
        "update_service",
        {},
        {"cluster": "demo-cluster", "service": "demo-canary", "desiredCount": 3},
    )
    with stub:
        EcsWorkload(client, lambda: OUTPUTS, ERRORS).scale_canary(3)
        stub.assert_no_pending_responses()
    with pytest.raises(UsageError):
        EcsWorkload(client, lambda: OUTPUTS, ERRORS).scale_canary(-1)


STABLE_TD = "arn:aws:ecs:us-east-1:1:task-definition/demo-stable:7"
COMPLETED = {"status": "PRIMARY", "rolloutState": "COMPLETED"}


def deployment(deployment_id: str, state: str, status: str = "PRIMARY", **extra: Any) -> Any:
    return {"id": deployment_id, "status": status, "rolloutState": state, **extra}


def arms(
    baseline: tuple[int, int, list[dict[str, Any]]], canary: tuple[int, int, list[dict[str, Any]]]
) -> dict[str, Any]:
    """DescribeServices with stable steady and the baseline/canary as (running, desired,
    deployments)."""
    stable = service("demo-stable", 2, 0, 2, COMPLETED)
    stable["taskDefinition"] = STABLE_TD
    return {
        "services": [
            stable,
            service("demo-canary", canary[0], 0, canary[1], *canary[2]),
            service("demo-baseline", baseline[0], 0, baseline[1], *baseline[2]),
        ]
    }


def expect_start(stub: Any, count: int = 2) -> None:
    """The two UpdateService calls of start_baseline, back to back, after reading stable."""
    stub.add_response("describe_services", arms((0, 0, [COMPLETED]), (2, 2, [COMPLETED])))
    stub.add_response(
        "update_service",
        {"service": {"serviceName": "demo-baseline",
                     "deployments": [deployment("ecs-svc/b2", "IN_PROGRESS")]}},
        {"cluster": "demo-cluster", "service": "demo-baseline", "desiredCount": count,
         "taskDefinition": STABLE_TD, "forceNewDeployment": True},
    )  # fmt: skip
    stub.add_response(
        "update_service",
        {"service": {"serviceName": "demo-canary",
                     "deployments": [deployment("ecs-svc/c2", "IN_PROGRESS"),
                                     deployment("ecs-svc/c1", "COMPLETED", "ACTIVE")]}},
        {"cluster": "demo-cluster", "service": "demo-canary", "forceNewDeployment": True},
    )  # fmt: skip


def workload(client: Any, outputs: Any = OUTPUTS, **kwargs: Any) -> EcsWorkload:
    return EcsWorkload(client, lambda: outputs, ERRORS, sleep=lambda _: None, **kwargs)


def test_start_baseline_starts_both_arms_at_once_on_stables_task_definition_and_waits() -> None:
    client, stub = stubbed("ecs")
    progress = RecordingProgress()
    expect_start(stub)
    # Both deployments under way, the canary's old tasks still draining...
    stub.add_response(
        "describe_services",
        arms((1, 2, [deployment("ecs-svc/b2", "IN_PROGRESS")]),
             (3, 2, [deployment("ecs-svc/c2", "IN_PROGRESS"),
                     deployment("ecs-svc/c1", "COMPLETED", "ACTIVE")])),
    )  # fmt: skip
    # ...the canary's new deployment completed, the old one still listed (not done yet)...
    stub.add_response(
        "describe_services",
        arms((2, 2, [deployment("ecs-svc/b2", "COMPLETED")]),
             (2, 2, [deployment("ecs-svc/c2", "COMPLETED"),
                     deployment("ecs-svc/c1", "COMPLETED", "ACTIVE")])),
    )  # fmt: skip
    stub.add_response(
        "describe_services",
        arms((2, 2, [deployment("ecs-svc/b2", "COMPLETED")]),
             (2, 2, [deployment("ecs-svc/c2", "COMPLETED")])),
    )  # fmt: skip
    with stub:
        workload(client).start_baseline(2, progress)
        stub.assert_no_pending_responses()
    assert progress.updates[0] == (
        "demo-baseline: 1/2 running, IN_PROGRESS; demo-canary: 3/2 running, IN_PROGRESS"
    )
    assert any("demo-stable:7" in line for line in progress.lines)


def test_start_baseline_reports_a_failed_baseline_deployment_with_its_reason() -> None:
    client, stub = stubbed("ecs")
    expect_start(stub)
    reason = "tasks failed to start: CannotPullContainerError"
    stub.add_response(
        "describe_services",
        arms((0, 2, [deployment("ecs-svc/b1", "IN_PROGRESS"),
                     deployment("ecs-svc/b2", "FAILED", "ACTIVE", rolloutStateReason=reason)]),
             (2, 2, [deployment("ecs-svc/c2", "COMPLETED")])),
    )  # fmt: skip
    with stub, pytest.raises(OperationFailed) as exc:
        workload(client).start_baseline(2, RecordingProgress())
    assert exc.value.message == f"the baseline deployment failed: {reason}"
    assert exc.value.hint is not None and "demo-baseline" in exc.value.hint


def test_a_canary_deployment_replaced_by_a_rollback_is_not_taken_for_steady() -> None:
    client, stub = stubbed("ecs")
    expect_start(stub)
    # The circuit breaker's rollback deployment is PRIMARY and COMPLETED, ours is gone.
    stub.add_response(
        "describe_services",
        arms((2, 2, [deployment("ecs-svc/b2", "COMPLETED")]),
             (2, 2, [deployment("ecs-svc/c3", "COMPLETED")])),
    )  # fmt: skip
    with stub, pytest.raises(OperationFailed, match="canary deployment was replaced"):
        workload(client).start_baseline(2, RecordingProgress())


def test_start_baseline_gives_up_after_the_timeout_with_a_hint() -> None:
    client, stub = stubbed("ecs")
    expect_start(stub)
    stuck = arms((0, 2, [deployment("ecs-svc/b2", "IN_PROGRESS")]),
                 (2, 2, [deployment("ecs-svc/c2", "COMPLETED")]))  # fmt: skip
    stub.add_response("describe_services", stuck)
    stub.add_response("describe_services", stuck)
    times = iter([0.0, 0.0, 1801.0])
    with stub, pytest.raises(OperationFailed) as exc:
        workload(client, clock=lambda: next(times)).start_baseline(2, RecordingProgress())
    assert exc.value.message.startswith(
        "the baseline and canary tasks are not all running after 30 minutes"
    )
    assert "demo-baseline: 0/2 running" in exc.value.message
    assert exc.value.hint is not None and "health checks" in exc.value.hint


def test_stop_baseline_scales_the_baseline_service_to_zero() -> None:
    client, stub = stubbed("ecs")
    stub.add_response(
        "update_service",
        {},
        {"cluster": "demo-cluster", "service": "demo-baseline", "desiredCount": 0},
    )
    with stub:
        workload(client).stop_baseline()
        stub.assert_no_pending_responses()


def test_a_stack_without_the_baseline_service_says_deploy_and_changes_nothing() -> None:
    client, stub = stubbed("ecs")
    with stub:
        with pytest.raises(NoBaseline) as exc:
            workload(client, OUTPUTS_TWO_GROUPS).start_baseline(1, RecordingProgress())
        assert exc.value.hint is not None and "deploy" in exc.value.hint
        workload(client, OUTPUTS_TWO_GROUPS).stop_baseline()  # nothing to stop
        stub.assert_no_pending_responses()


def test_a_baseline_needs_at_least_one_task() -> None:
    client, stub = stubbed("ecs")
    with stub, pytest.raises(UsageError, match="at least 1 task"):
        workload(client).start_baseline(0, RecordingProgress())


def test_scale_sets_one_services_desired_count_without_waiting() -> None:
    # Issue 11 item 9: a rollout sizes the baseline like the canary, one UpdateService each
    # and no DescribeServices after it (the controller watches health across its ticks).
    client, stub = stubbed("ecs")
    for name, count in (("demo-baseline", 2), ("demo-canary", 3)):
        stub.add_response(
            "update_service",
            {},
            {"cluster": "demo-cluster", "service": name, "desiredCount": count},
        )
    with stub:
        workload(client).scale("baseline", 2)
        workload(client).scale_canary(3)
        stub.assert_no_pending_responses()
    with pytest.raises(UsageError):
        workload(client).scale("canary", -1)


def test_healthy_targets_reads_only_the_groups_asked_for() -> None:
    # Issue 11 item 7: the rollout's health gate, one DescribeTargetHealth per group asked.
    client, stub = stubbed("elbv2")

    def targets(*states: str) -> dict[str, Any]:
        return {
            "TargetHealthDescriptions": [
                {"Target": {"Id": f"10.0.0.{i}"}, "TargetHealth": {"State": s}}
                for i, s in enumerate(states)
            ]
        }

    stub.add_response(
        "describe_target_health",
        targets("healthy", "initial", "healthy"),
        {"TargetGroupArn": OUTPUTS.target_group_canary_arn},
    )
    stub.add_response(
        "describe_target_health",
        targets("unhealthy", "draining"),
        {"TargetGroupArn": OUTPUTS.target_group_baseline_arn},
    )
    health = TargetHealth(client, lambda: OUTPUTS, ERRORS)
    stack_workload = StackWorkload(None, None, None, health)  # type: ignore[arg-type]
    with stub:
        assert stack_workload.healthy_targets(("canary", "baseline")) == {
            "canary": 2,
            "baseline": 0,
        }
        stub.assert_no_pending_responses()
    # A stack without the baseline group has no healthy baseline target (and no call).
    two_groups = TargetHealth(client, lambda: OUTPUTS_TWO_GROUPS, ERRORS)
    assert two_groups.healthy(("baseline",)) == {"baseline": 0}
