"""`status` along the chain with stubbed AWS answers moto cannot give (tasks, health, traffic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from canary_deploy.aws.clients import AwsClients
from canary_deploy.aws.target import AwsTarget
from canary_deploy.backend import Status
from canary_deploy.config import load_settings
from canary_deploy.weights import Weights
from tests.aws.stubs import OUTPUTS, REGION, stubbed
from tests.aws.test_router import listener

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STACK_OUTPUTS = {
    "ALBDNS": OUTPUTS.alb_dns,
    "ListenerArn": OUTPUTS.listener_arn,
    "LoadBalancerArn": OUTPUTS.load_balancer_arn,
    "TargetGroupStableArn": OUTPUTS.target_group_stable_arn,
    "TargetGroupCanaryArn": OUTPUTS.target_group_canary_arn,
    "ClusterName": OUTPUTS.cluster_name,
    "ServiceStableName": OUTPUTS.service_stable_name,
    "ServiceCanaryName": OUTPUTS.service_canary_name,
}


def service(
    name: str, running: int, pending: int, desired: int, *deployments: dict[str, Any]
) -> dict[str, Any]:
    return {
        "serviceName": name,
        "status": "ACTIVE",
        "runningCount": running,
        "pendingCount": pending,
        "desiredCount": desired,
        "taskDefinition": f"arn:aws:ecs:us-east-1:1:task-definition/{name}:3",
        "deployments": list(deployments),
    }


def health(*states: str) -> dict[str, Any]:
    return {
        "TargetHealthDescriptions": [
            {"Target": {"Id": f"10.0.0.{i}", "Port": 8000}, "TargetHealth": {"State": s}}
            for i, s in enumerate(states)
        ]
    }


def task_definition(name: str, image: str) -> dict[str, Any]:
    return {
        "taskDefinition": {
            "family": name,
            "revision": 3,
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": [
                {"name": "app", "image": image, "portMappings": [{"containerPort": 8000}]}
            ],
        }
    }


STABLE_DIGEST = "sha256:" + "5" * 64


def running_task(arn: str, service_name: str, image: str, digest: str | None) -> dict[str, Any]:
    """A task DescribeTasks reports, on its service's current task definition."""
    container: dict[str, Any] = {"name": "app", "image": image}
    if digest:
        container["imageDigest"] = digest
    return {
        "taskArn": arn,
        "taskDefinitionArn": f"arn:aws:ecs:us-east-1:1:task-definition/{service_name}:3",
        "containers": [container],
    }


class StubbedStack:
    """The five stubbed clients `status` reads, and the target built on them."""

    def __init__(self) -> None:
        names = ("cloudformation", "elbv2", "ecs", "ec2", "cloudwatch")
        pairs = [stubbed(name) for name in names]
        self.cf, self.elb, self.ecs, self.ec2, self.cw = (stub for _, stub in pairs)
        clients = AwsClients(*(client for client, _ in pairs), REGION)
        settings = load_settings({"target": "aws", "stack_name": "demo"}, env={})
        self.target = AwsTarget(clients, settings)
        self.stubs = [stub for _, stub in pairs]

    def status(self) -> Status:
        """`status` against the queued responses, all of which must be used."""
        for stub in self.stubs:
            stub.activate()
        status = self.target.status()
        for stub in self.stubs:
            stub.assert_no_pending_responses()
            stub.deactivate()
        return status


def stubbed_target() -> StubbedStack:
    stack = StubbedStack()
    cf_stub, elb_stub, ecs_stub, cw_stub = stack.cf, stack.elb, stack.ecs, stack.cw
    cf_stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "demo",
                    "StackStatus": "UPDATE_COMPLETE",
                    "CreationTime": T0,
                    "Parameters": [
                        {"ParameterKey": "StableWeight", "ParameterValue": "95"},
                        {"ParameterKey": "CanaryWeight", "ParameterValue": "5"},
                    ],
                    "Outputs": [
                        {"OutputKey": k, "OutputValue": v} for k, v in STACK_OUTPUTS.items()
                    ],
                }
            ]
        },
    )
    elb_stub.add_response(
        "describe_listeners", listener(90, 10, {"Enabled": True, "DurationSeconds": 300})
    )
    services = {
        "services": [
            service("demo-stable", 2, 0, 2, {"status": "PRIMARY", "rolloutState": "COMPLETED"}),
            service(
                "demo-canary",
                0,
                1,
                1,
                {
                    "status": "PRIMARY",
                    "rolloutState": "FAILED",
                    "rolloutStateReason": "circuit breaker: tasks failed to start",
                },
            ),
        ]
    }
    ecs_stub.add_response("describe_services", services)
    ecs_stub.add_response("describe_services", services)
    ecs_stub.add_response("describe_task_definition", task_definition("demo-stable", "repo:v1"))
    ecs_stub.add_response("describe_task_definition", task_definition("demo-canary", "repo:v2"))
    # The running tasks and the digests of their images.
    ecs_stub.add_response("describe_services", services)
    ecs_stub.add_response(  # the canary runs no task: not listed
        "list_tasks",
        {"taskArns": ["s1", "s2"]},
        {"cluster": "demo-cluster", "serviceName": "demo-stable", "desiredStatus": "RUNNING"},
    )
    ecs_stub.add_response(
        "describe_tasks",
        {
            "tasks": [
                running_task(arn, "demo-stable", "repo:v1", STABLE_DIGEST) for arn in ("s1", "s2")
            ]
        },
        {"cluster": "demo-cluster", "tasks": ["s1", "s2"]},
    )
    cw_stub.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                # Every request answered by a target (2xx or 5xx): the 5xx are the errors.
                {"Id": "stable_req", "Values": [4000.0]},
                {"Id": "stable_t2", "Values": [3996.0]},
                {"Id": "stable_t5", "Values": [4.0]},
                {"Id": "stable_p95", "Values": [0.2]},
                {"Id": "canary_req", "Values": [400.0]},
                {"Id": "canary_t2", "Values": [360.0]},
                {"Id": "canary_t5", "Values": [40.0]},
            ]
        },
    )
    elb_stub.add_response("describe_target_health", health("healthy", "healthy", "draining"))
    elb_stub.add_response("describe_target_health", health("unhealthy", "initial"))
    return stack


def test_status_follows_the_chain_with_health_counts_drift_and_traffic() -> None:
    status = stubbed_target().status()

    assert status.stack_status == "UPDATE_COMPLETE"
    assert status.listener is not None
    assert status.listener.url == f"http://{OUTPUTS.alb_dns}/"
    assert status.listener.weights == Weights(90, 10)
    assert status.listener.stickiness_seconds == 300
    assert status.listener.configured_weights == Weights(95, 5)
    assert status.listener.drift

    stable, canary = status.versions["stable"], status.versions["canary"]
    assert stable.task_definition is not None and stable.task_definition.image == "repo:v1"
    assert stable.task_definition.revision == "demo-stable:3"
    assert stable.service is not None and (stable.service.running, stable.service.desired) == (2, 2)
    assert canary.service is not None and canary.service.deployment_state == "FAILED"
    assert canary.service.message == "circuit breaker: tasks failed to start"
    assert stable.target_group is not None
    assert (stable.target_group.healthy, stable.target_group.draining) == (2, 1)
    assert canary.target_group is not None
    assert (canary.target_group.unhealthy, canary.target_group.initial) == (1, 1)
    assert stable.traffic is not None and stable.traffic.requests == 4000
    assert stable.traffic.p95_s == 0.2
    assert canary.traffic is not None and canary.traffic.error_rate == 0.1

    # ECS reports the digest of the image stable's tasks run; the canary has no task.
    assert f"stable tasks run repo@{STABLE_DIGEST}" in status.notes
    assert not any(note.startswith("canary tasks run") for note in status.notes)

    doc = status.to_dict()
    assert doc["listener"]["drift"] is True
    assert doc["versions"]["canary"]["target_group"]["unhealthy"] == 1


def test_status_of_a_rolled_back_first_creation_explains_what_to_do() -> None:
    cf, stub = stubbed("cloudformation")
    stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "demo",
                    "StackStatus": "ROLLBACK_COMPLETE",
                    "StackStatusReason": "The following resource(s) failed to create: [Listener]",
                    "CreationTime": T0,
                }
            ]
        },
    )
    others = []
    for name in ("elbv2", "ecs", "ec2", "cloudwatch"):
        client, no_calls = stubbed(name)
        no_calls.activate()  # any call to these would fail the test, never reach a network
        others.append(client)
    settings = load_settings({"target": "aws", "stack_name": "demo"}, env={})
    target = AwsTarget(AwsClients(cf, *others, REGION), settings)
    with stub:
        status = target.status()
    assert status.stack_status == "ROLLBACK_COMPLETE"
    assert status.listener is None
    assert any("delete --yes" in note for note in status.notes)


def test_status_of_a_stack_whose_rollback_failed_gives_the_command_to_continue_it() -> None:
    stack = StubbedStack()
    stack.cf.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": "demo", "StackStatus": "UPDATE_ROLLBACK_FAILED",
                     "CreationTime": T0}]},
    )  # fmt: skip
    status = stack.status()
    assert status.stack_status == "UPDATE_ROLLBACK_FAILED"
    assert any(
        "`aws cloudformation continue-update-rollback --stack-name demo --region us-east-1`" in note
        for note in status.notes
    )


BASELINE_OUTPUTS = {
    **STACK_OUTPUTS,
    "TargetGroupBaselineArn": str(OUTPUTS.target_group_baseline_arn),
    "ServiceBaselineName": str(OUTPUTS.service_baseline_name),
}


def baseline_status(running: int, desired: int, weights: tuple[int, int, int]) -> Status:
    """`status` of a stack that has the baseline group, with its service and weight as given."""
    stack = StubbedStack()
    cf_stub, elb_stub, ecs_stub, cw_stub = stack.cf, stack.elb, stack.ecs, stack.cw
    cf_stub.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": "demo", "StackStatus": "UPDATE_COMPLETE", "CreationTime": T0,
                     "Outputs": [{"OutputKey": k, "OutputValue": v}
                                 for k, v in BASELINE_OUTPUTS.items()]}]},
    )  # fmt: skip
    stable, canary, baseline = weights
    elb_stub.add_response(
        "describe_listeners", listener(stable, canary, {"Enabled": False}, baseline)
    )
    steady = {"status": "PRIMARY", "rolloutState": "COMPLETED"}
    services = {
        "services": [
            service("demo-stable", 2, 0, 2, steady),
            service("demo-canary", 1, 0, 1, steady),
            service("demo-baseline", running, desired - running, desired, steady),
        ]
    }
    ecs_stub.add_response("describe_services", services)
    ecs_stub.add_response("describe_services", services)
    for name, image in (("demo-stable", "repo:v1"), ("demo-canary", "repo:v2"),
                        ("demo-baseline", "repo:v1")):  # fmt: skip
        ecs_stub.add_response("describe_task_definition", task_definition(name, image))
    ecs_stub.add_response("describe_services", services)
    for found in services["services"]:
        if found["runningCount"]:  # only services with running tasks are listed
            ecs_stub.add_response("list_tasks", {"taskArns": []})
    cw_stub.add_response("get_metric_data", {"MetricDataResults": []})
    shown = 3 if running or desired or baseline else 2
    for _ in range(shown):
        elb_stub.add_response("describe_target_health", health("healthy"))
    return stack.status()


def test_outside_a_rollout_status_has_no_baseline_row() -> None:
    status = baseline_status(running=0, desired=0, weights=(95, 5, 0))
    assert set(status.versions) == {"stable", "canary"}
    assert status.listener is not None and status.listener.weights == Weights(95, 5)


@pytest.mark.parametrize(
    ("running", "desired", "weights"),
    [(0, 1, (95, 5, 0)), (1, 1, (95, 5, 0)), (1, 1, (90, 5, 5)), (0, 0, (90, 5, 5))],
)
def test_the_baseline_row_appears_when_it_has_tasks_or_weight(
    running: int, desired: int, weights: tuple[int, int, int]
) -> None:
    status = baseline_status(running, desired, weights)
    assert list(status.versions) == ["stable", "canary", "baseline"]
    row = status.versions["baseline"]
    assert row.service is not None and (row.service.running, row.service.desired) == (
        running,
        desired,
    )
    assert row.task_definition is not None and row.task_definition.image == "repo:v1"
    assert row.target_group is not None and row.target_group.healthy == 1
    assert status.listener is not None and status.listener.weights == Weights(*weights)
