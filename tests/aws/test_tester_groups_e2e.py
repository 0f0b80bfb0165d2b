"""Tester target groups against the moto server: every service registers its tasks in its
main group and in its tester group; tester routes forward to the tester groups, which are
in no weighted action and whose metrics the judge never reads; rollouts (steps, promotion,
rollback) leave the routes alone; a stack from before the tester groups refuses new routes
until a deploy adds them, and that deploy moves the routes it had onto them.

moto starts no task and registers no target (DESIGN.md section 4): that each task is in
both groups is checked on what ECS is told, the services' `loadBalancers`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import boto3
import pytest

from canary_deploy.aws import stack as stack_module
from canary_deploy.aws.metrics import CloudWatchMetrics, arn_suffix
from canary_deploy.aws.routes import ROUTE_TAG
from canary_deploy.aws.state_open import open_state
from canary_deploy.aws.target import AwsTarget
from canary_deploy.config import load_settings
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.store import RolloutStatus
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.test_rollout import rollout, steady
from tests.aws.test_routes_e2e import ROLES, arns_of_tester_groups, rules, weighted_arns
from tests.rollout.fakes import Clock


def add_routes(cli: CliRunner) -> None:
    for args in (
        ("--header", "X-Canary=always", "--to", "canary"),
        ("--header", "X-Canary=stable", "--to", "stable"),
        ("--cookie", "tester=baseline", "--to", "baseline"),
    ):
        added = cli("route", "add", *args)
        assert added.exit_code == 0, added


def forwards(rule: dict[str, Any]) -> list[str]:
    return [g["TargetGroupArn"] for g in rule["Actions"][0]["ForwardConfig"]["TargetGroups"]]


def test_every_service_registers_its_tasks_in_its_group_and_in_its_tester_group(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0
    outputs = aws_env.outputs()
    names = {outputs[f"Service{role}Name"]: role for role in ROLES}
    found = boto3.client("ecs").describe_services(
        cluster=outputs["ClusterName"], services=list(names)
    )["services"]
    assert len(found) == 3
    for service in found:
        role = names[service["serviceName"]]
        registered = [
            (lb["targetGroupArn"], lb["containerName"], lb["containerPort"])
            for lb in service["loadBalancers"]
        ]
        assert registered == [
            (outputs[f"TargetGroup{role}Arn"], "app", 8000),
            (outputs[f"TesterTargetGroup{role}Arn"], "app", 8000),
        ]
    # Same port and health check as the main group: a task is healthy in both or neither.
    elbv2 = boto3.client("elbv2")
    for role in ROLES:
        main, tester = elbv2.describe_target_groups(
            TargetGroupArns=[
                outputs[f"TargetGroup{role}Arn"],
                outputs[f"TesterTargetGroup{role}Arn"],
            ]
        )["TargetGroups"]
        for key in ("Port", "Protocol", "TargetType", "HealthCheckPath", "Matcher"):
            assert tester[key] == main[key], (role, key)
    # Only the main groups are weighted; the stack's own rule (which no request matches)
    # keeps the tester groups in use by the listener, as ECS requires.
    main_arns = {outputs[f"TargetGroup{role}Arn"] for role in ROLES}
    assert weighted_arns(aws_env) == main_arns
    listener_rules = elbv2.describe_rules(ListenerArn=outputs["ListenerArn"])["Rules"]
    (held,) = [r for r in listener_rules if r["Priority"] == "50000"]
    assert set(forwards(held)) == arns_of_tester_groups(aws_env)


def test_the_judge_never_reads_a_tester_group_while_routes_are_in_place(
    aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("deploy").exit_code == 0
    add_routes(cli)
    # Every CloudWatch query anyone makes (the controller's, `status`'s), by dimension.
    queried: list[str] = []
    fetch = CloudWatchMetrics._fetch

    def recording(self: CloudWatchMetrics, queries: list[Any], start: float, end: float) -> Any:
        for query in queries:
            for dimension in query["MetricStat"]["Metric"]["Dimensions"]:
                queried.append(dimension["Value"])
        return fetch(self, queries, start, end)

    monkeypatch.setattr(CloudWatchMetrics, "_fetch", recording)
    before = rules(aws_env)
    assert cli("status").exit_code == 0
    assert cli("set-weights", "100", "0").exit_code == 0

    target = AwsTarget.from_settings(load_settings())
    steady(target, monkeypatch)
    plan = build_plan("aws", {"baseline": False})
    clock = Clock(1_700_000_000.0)
    store = open_state(region=None, profile=None, stack_name=aws_env.stack_name)
    try:
        r = start_rollout(store, plan, target.metrics, canary_image="repo/app:v2", clock=clock)
        controller = Controller(
            target.router, target.workload, target.metrics, store, r.id, clock=clock
        )
        for _ in range(60):
            clock.advance(plan.tick_s)
            controller.tick()
    finally:
        store.close()

    testers = {arn_suffix(arn, "targetgroup/") for arn in arns_of_tester_groups(aws_env)}
    outputs = aws_env.outputs()
    mains = {arn_suffix(outputs[f"TargetGroup{role}Arn"], "targetgroup/") for role in ROLES}
    groups_queried = {value for value in queried if value.startswith("targetgroup/")}
    assert groups_queried == mains  # status and the controller both read, the main groups
    assert not testers & set(queried)
    assert rules(aws_env) == before  # the rollout's steps left the routes alone


@pytest.mark.parametrize(
    ("error_rate", "ended"), [(0.01, RolloutStatus.PROMOTED), (0.2, RolloutStatus.ROLLED_BACK)]
)
def test_promotion_and_rollback_leave_the_routes_alone(
    aws_env: AwsEnv,
    cli: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    error_rate: float,
    ended: RolloutStatus,
) -> None:
    assert cli("deploy").exit_code == 0
    add_routes(cli)
    before = rules(aws_env)
    target = AwsTarget.from_settings(load_settings())
    steady(target, monkeypatch)
    store, rollout_id, _ = rollout(tmp_path, target, canary_error_rate=error_rate)
    assert store.get(rollout_id).status is ended
    assert aws_env.live_weights() == Weights(100, 0)
    assert rules(aws_env) == before
    assert all(forwards(rule)[0] in arns_of_tester_groups(aws_env) for rule in before)
    assert not weighted_arns(aws_env) & arns_of_tester_groups(aws_env)


CURRENT_TEMPLATE = stack_module.template_body()


def template_before_tester_groups() -> str:
    """The packaged template as it was before the tester groups (resources, the rule that
    holds them, the services' second registration, outputs)."""
    body = CURRENT_TEMPLATE
    body = re.sub(r"\n  # Tester groups:.*?\n(?=  LoadBalancer:\n)", "\n", body, flags=re.S)
    body = re.sub(r"\n  # ECS registers a service's.*?\n(?=\n  ServiceStable:\n)", "\n", body,
                  flags=re.S)  # fmt: skip
    body = body.replace("DependsOn: [Listener, TesterGroupsRule]", "DependsOn: Listener")
    body = re.sub(r"        - ContainerName: app\n.*\n          TargetGroupArn: !Ref Tester\w+\n",
                  "", body)  # fmt: skip
    body = re.sub(r"  TesterTargetGroup\w+Arn:\n    Description: .*\n    Value: .*\n", "", body)
    assert "Tester" not in body
    return body


def test_an_old_stack_refuses_routes_until_a_deploy_adds_tester_groups_and_moves_its_routes(
    aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as old:
        old.setattr(stack_module, "template_body", template_before_tester_groups)
        assert cli("deploy").exit_code == 0
    outputs = aws_env.outputs()
    assert "TesterTargetGroupCanaryArn" not in outputs

    # A route there would be judged: refused, with what to do.
    refused = cli("route", "add", "--header", "X-Canary=always", "--to", "canary")
    assert refused.exit_code != 0
    assert "the stack has no tester target groups" in refused.stderr
    assert "canary --target aws deploy" in refused.stderr
    assert rules(aws_env) == []

    # A route made by an older canary-deploy: a tagged rule to the main canary group.
    elbv2 = boto3.client("elbv2")
    elbv2.create_rule(
        ListenerArn=outputs["ListenerArn"],
        Priority=1,
        Conditions=[
            {
                "Field": "http-header",
                "HttpHeaderConfig": {"HttpHeaderName": "X-Canary", "Values": ["always"]},
            }
        ],
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": outputs["TargetGroupCanaryArn"], "Weight": 1}
                    ]
                },
            }
        ],
        Tags=[{"Key": ROUTE_TAG, "Value": "header"}],
    )
    listed = cli("route", "list", "-o", "json")
    assert listed.exit_code == 0 and '"to": "canary"' in listed.stdout
    status = cli("status")
    assert "no tester target groups" in " ".join(status.stdout.split())

    deployed = cli("deploy")  # the current template
    assert deployed.exit_code == 0, deployed
    said = " ".join(deployed.stderr.split())  # progress lines are wrapped to the terminal
    assert "-> canary now forwards to the canary tester target group" in said
    outputs = aws_env.outputs()
    (moved,) = rules(aws_env)
    assert forwards(moved) == [outputs["TesterTargetGroupCanaryArn"]]
    canary = boto3.client("ecs").describe_services(
        cluster=outputs["ClusterName"], services=[outputs["ServiceCanaryName"]]
    )["services"][0]
    assert [lb["targetGroupArn"] for lb in canary["loadBalancers"]] == [
        outputs["TargetGroupCanaryArn"],
        outputs["TesterTargetGroupCanaryArn"],
    ]
    assert "no tester target groups" not in " ".join(cli("status").stdout.split())
    assert cli("route", "add", "--cookie", "t=1", "--to", "stable").exit_code == 0
    assert cli("delete", "--yes").exit_code == 0
    assert not aws_env.stack_exists()
