"""ECS services: waiting for a steady deployment, failures say why (stubbed ECS)."""

from __future__ import annotations

from typing import Any

import pytest

from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.errors import OperationFailed, UsageError
from tests.aws.stubs import ERRORS, OUTPUTS, RecordingProgress, stubbed
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
