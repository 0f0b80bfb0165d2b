"""Which image the tasks run: pinned by the digest ECS reports (DescribeTasks), else the
task definition's (stubbed ECS: moto starts no task)."""

from __future__ import annotations

from typing import Any

import pytest

from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.errors import OperationFailed
from tests.aws.stubs import ERRORS, OUTPUTS, stubbed
from tests.aws.test_status import running_task, service, task_definition

DIGEST = "sha256:" + "a" * 64
PUSHED_AGAIN = "sha256:" + "b" * 64
STEADY = {"status": "PRIMARY", "rolloutState": "COMPLETED"}
SERVICES = {
    "services": [
        service("demo-stable", 2, 0, 2, STEADY),
        service("demo-canary", 2, 0, 2, STEADY),
    ]
}


def expect_tasks(stub: Any, canary_tasks: list[dict[str, Any]]) -> None:
    """DescribeServices, ListTasks per service (stable has none), DescribeTasks."""
    stub.add_response("describe_services", SERVICES)
    stub.add_response("list_tasks", {"taskArns": []})
    arns = [task["taskArn"] for task in canary_tasks]
    stub.add_response(
        "list_tasks",
        {"taskArns": arns},
        {"cluster": "demo-cluster", "serviceName": "demo-canary", "desiredStatus": "RUNNING"},
    )
    if arns:
        stub.add_response("describe_tasks", {"tasks": canary_tasks})


def canary_image(canary_tasks: list[dict[str, Any]], *fallback: Any) -> str | None:
    client, stub = stubbed("ecs")
    expect_tasks(stub, canary_tasks)
    for response in fallback:
        stub.add_response(*response)
    with stub:
        image = EcsWorkload(client, lambda: OUTPUTS, ERRORS).running_image("canary")
        stub.assert_no_pending_responses()
    return image


def test_the_canary_image_is_pinned_by_the_digest_its_tasks_run() -> None:
    tasks = [running_task(arn, "demo-canary", "repo/app:v2", DIGEST) for arn in ("c1", "c2")]
    assert canary_image(tasks) == f"repo/app@{DIGEST}"


def test_tasks_of_an_older_task_definition_do_not_count() -> None:
    draining = running_task("c0", "demo-canary", "repo/app:v1", PUSHED_AGAIN)
    draining["taskDefinitionArn"] = "arn:aws:ecs:us-east-1:1:task-definition/demo-canary:2"
    current = running_task("c1", "demo-canary", "repo/app:v2", DIGEST)
    assert canary_image([draining, current]) == f"repo/app@{DIGEST}"


def test_without_a_reported_digest_it_is_the_task_definitions_image() -> None:
    fallback = [
        ("describe_services", SERVICES),
        ("describe_task_definition", task_definition("demo-stable", "repo/app:v1")),
        ("describe_task_definition", task_definition("demo-canary", "repo/app:v2")),
    ]
    assert canary_image([], *fallback) == "repo/app:v2"
    no_digest = [running_task("c1", "demo-canary", "repo/app:v2", None)]
    assert canary_image(no_digest, *fallback) == "repo/app:v2"


def test_a_tag_pushed_again_while_tasks_started_is_an_error_naming_both_digests() -> None:
    tasks = [
        running_task("c1", "demo-canary", "repo/app:v2", DIGEST),
        running_task("c2", "demo-canary", "repo/app:v2", PUSHED_AGAIN),
    ]
    with pytest.raises(OperationFailed) as exc:
        canary_image(tasks)
    assert "the canary tasks run 2 different images" in exc.value.message
    assert f"repo/app@{DIGEST}" in exc.value.message
    assert exc.value.hint is not None and "by digest" in exc.value.hint
