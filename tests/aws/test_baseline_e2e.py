"""The baseline group end to end against the moto server: three groups on one listener,
the baseline's tasks started and stopped with ECS calls, stack updates that keep them.

moto starts no tasks, so the wait for the deployments to complete is the one thing faked;
every assertion is on what we sent (listener weights, desired counts, stack parameters)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from canary_deploy.aws.network import resolve_network
from canary_deploy.aws.outputs import NoBaseline
from canary_deploy.aws.target import AwsTarget
from canary_deploy.config import load_settings
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.stubs import ERRORS, RecordingProgress
from tests.aws.test_rollout import ModifyListenerCounter
from tests.aws.test_template import load


@pytest.fixture
def target(aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> AwsTarget:
    """A stack deployed at 95/5 through the CLI; deployments 'complete' at once."""
    deployed = cli("deploy")
    assert deployed.exit_code == 0, deployed.stderr
    target = AwsTarget.from_settings(load_settings())
    monkeypatch.setattr(target.ecs, "wait_deployments", lambda started, progress: None)
    return target


def services(target: AwsTarget) -> dict[str, dict[str, object]]:
    """moto's view of the three services, by group: desired count and task definition."""
    out = target.outputs()
    found = target.ecs._ecs.describe_services(  # type: ignore[attr-defined]
        cluster=out.cluster_name, services=[out.service_name(g) for g in out.groups]
    )["services"]
    by_name = {s["serviceName"]: s for s in found}
    return {
        g: {
            "desired": by_name[out.service_name(g)]["desiredCount"],
            "task_definition": by_name[out.service_name(g)]["taskDefinition"],
        }
        for g in out.groups
    }


def test_three_groups_on_one_listener_each_change_one_call(
    aws_env: AwsEnv, target: AwsTarget, cli: CliRunner
) -> None:
    counter = ModifyListenerCounter(target)
    assert aws_env.live_weights() == Weights(95, 5)  # the baseline group is there, at 0

    target.router.set_weights(Weights(90, 5, 5))
    assert counter.calls == [[90, 5, 5]]
    assert aws_env.live_weights() == Weights(90, 5, 5)
    assert target.router.get_weights() == Weights(90, 5, 5)
    assert target.router.verify_weights(Weights(90, 5, 5))
    shown = cli("status", "--output", "json")
    assert shown.exit_code == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["listener"]["weights"] == {"stable": 90, "canary": 5, "baseline": 5}
    assert "baseline" in doc["versions"]  # it has weight: it has a row

    target.router.set_weights(Weights(100, 0, 0))
    assert counter.calls == [[90, 5, 5], [100, 0, 0]]
    assert aws_env.live_weights() == Weights(100, 0)
    # ModifyListener replaced the whole action: stickiness was sent again, unchanged.
    assert aws_env.listener()["TargetGroupStickinessConfig"] == {"Enabled": False}
    doc = json.loads(cli("status", "--output", "json").stdout)
    assert "baseline" not in doc["versions"]  # no tasks, no weight: no row


def test_start_baseline_runs_stables_task_definition_and_restarts_the_canary(
    target: AwsTarget,
) -> None:
    before = services(target)
    assert before["baseline"]["desired"] == 0  # outside rollouts
    progress = RecordingProgress()
    target.workload.start_baseline(2, progress)
    after = services(target)
    assert after["baseline"]["desired"] == 2
    assert after["baseline"]["task_definition"] == before["stable"]["task_definition"]
    assert after["canary"] == before["canary"]  # same count and image, fresh tasks
    assert any("started together" in line for line in progress.lines)

    target.workload.stop_baseline()
    assert services(target)["baseline"]["desired"] == 0


def test_a_deploy_during_a_rollout_keeps_the_baselines_tasks_and_weight(
    aws_env: AwsEnv, target: AwsTarget, cli: CliRunner
) -> None:
    target.workload.start_baseline(2, RecordingProgress())
    target.router.set_weights(Weights(90, 5, 5))

    updated = cli("deploy", IMAGE_URI_CANARY="repo/app:v3")
    assert updated.exit_code == 0, updated.stderr
    assert "Keeping the live listener weights 90/5/5" in updated.stderr
    assert "Keeping the baseline's 2 live task(s)" in updated.stderr
    parameters = aws_env.stack_parameters()
    assert parameters["ImageURICanary"] == "repo/app:v3"
    assert (parameters["StableWeight"], parameters["CanaryWeight"]) == ("90", "5")
    assert (parameters["BaselineWeight"], parameters["DesiredCountBaseline"]) == ("5", "2")
    assert aws_env.live_weights() == Weights(90, 5, 5)
    assert services(target)["baseline"]["desired"] == 2

    # The rollout ends: one listener call, then the baseline's tasks stop. The next deploy
    # follows: 0 tasks, weight 0.
    target.router.set_weights(Weights(100, 0, 0))
    target.workload.stop_baseline()
    again = cli("deploy", IMAGE_URI_CANARY="repo/app:v3", DESIRED_COUNT_CANARY="2")
    assert again.exit_code == 0, again.stderr
    parameters = aws_env.stack_parameters()
    assert (parameters["BaselineWeight"], parameters["DesiredCountBaseline"]) == ("0", "0")
    assert services(target)["baseline"]["desired"] == 0


def slow_start(aws_env: AwsEnv) -> list[str]:
    """Each target group's slow_start.duration_seconds (stable, canary, baseline)."""
    outputs, elbv2 = aws_env.outputs(), boto3.client("elbv2")
    values = []
    for group in ("Stable", "Canary", "Baseline"):
        arn = outputs[f"TargetGroup{group}Arn"]
        attributes = elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        values.extend(a["Value"] for a in attributes if a["Key"] == "slow_start.duration_seconds")
    return values


def test_slow_start_reaches_every_target_group_and_is_off_by_default(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0
    assert aws_env.stack_parameters()["SlowStartSeconds"] == "0"
    assert slow_start(aws_env) == ["0", "0", "0"]
    updated = cli("deploy", "--slow-start", "120")
    assert updated.exit_code == 0, updated.stderr
    assert aws_env.stack_parameters()["SlowStartSeconds"] == "120"
    assert slow_start(aws_env) == ["120", "120", "120"]
    assert aws_env.live_weights() == Weights(95, 5)  # the groups were updated, not lost


def template_without_baseline() -> str:
    """The template as it was before the baseline group (JSON): no baseline target group,
    service, parameters or outputs, and a listener over two groups."""
    doc = cfn_json(load())
    for name in ("DesiredCountBaseline", "BaselineWeight", "SlowStartSeconds"):
        del doc["Parameters"][name]
    for name in ("TargetGroupBaseline", "ServiceBaseline"):
        del doc["Resources"][name]
    for name in ("TargetGroupBaselineArn", "ServiceBaselineName"):
        del doc["Outputs"][name]
    # Nor had it the tester groups (they came later still).
    for role in ("Stable", "Canary", "Baseline"):
        del doc["Resources"][f"TesterTargetGroup{role}"]
        del doc["Outputs"][f"TesterTargetGroup{role}Arn"]
    del doc["Resources"]["TesterGroupsRule"]
    for service in ("ServiceStable", "ServiceCanary"):
        doc["Resources"][service]["DependsOn"] = "Listener"
        del doc["Resources"][service]["Properties"]["LoadBalancers"][1:]
    # Its stickiness followed the parameter alone (no weights, no baseline in the rule).
    # (The production settings' conditions stay: their defaults give the stack of then.)
    doc["Conditions"]["StickinessOn"] = {"Fn::Equals": [{"Ref": "StickinessEnabled"}, "true"]}
    del doc["Conditions"]["StickinessConfigured"]
    for group in ("TargetGroupStable", "TargetGroupCanary"):
        attributes = doc["Resources"][group]["Properties"]["TargetGroupAttributes"]
        attributes[:] = [a for a in attributes if a["Key"] != "slow_start.duration_seconds"]
    forward = doc["Resources"]["Listener"]["Properties"]["DefaultActions"][0]["ForwardConfig"]
    forward["TargetGroups"] = forward["TargetGroups"][:2]
    return json.dumps(doc)


def cfn_json(node: Any) -> Any:
    """Short-form tags as loaded by test_template's loader ({"Sub": x}) -> long form."""
    if isinstance(node, list):
        return [cfn_json(n) for n in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, value),) = node.items()
        if key in ("Ref", "Sub", "GetAtt", "If", "Equals", "Not", "Join"):
            if key == "Ref":
                return {"Ref": value}
            if key == "GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
            return {f"Fn::{key}": cfn_json(value)}
    return {k: cfn_json(v) for k, v in node.items()}


def test_a_stack_from_before_the_baseline_works_with_two_groups_until_a_deploy_adds_it(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    network = resolve_network(boto3.client("ec2"), ERRORS, None, ())
    boto3.client("cloudformation").create_stack(
        StackName=aws_env.stack_name,
        TemplateBody=template_without_baseline(),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in {
                "ImageURIStable": "repo/app:v1",
                "ImageURICanary": "repo/app:v2",
                "VpcId": network.vpc_id,
                "SubnetIds": ",".join(network.subnet_ids),
            }.items()
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    old = AwsTarget.from_settings(load_settings())
    assert not old.outputs().has_baseline
    counter = ModifyListenerCounter(old)
    assert old.router.get_weights() == Weights(95, 5)
    old.router.set_weights(Weights(75, 25))
    assert counter.calls == [[75, 25]]  # two groups: the listener has no third
    with pytest.raises(NoBaseline):
        old.router.set_weights(Weights(90, 5, 5))
    with pytest.raises(NoBaseline):
        old.workload.start_baseline(1, RecordingProgress())
    old.workload.stop_baseline()  # nothing to stop
    assert set(old.status().versions) == {"stable", "canary"}
    assert counter.calls == [[75, 25]]

    upgraded = cli("deploy")
    assert upgraded.exit_code == 0, upgraded.stderr
    assert "Keeping the live listener weights 75/25" in upgraded.stderr
    assert aws_env.live_weights() == Weights(75, 25)  # now over three groups
    assert aws_env.stack_parameters()["DesiredCountBaseline"] == "0"
    new = AwsTarget.from_settings(load_settings())
    new.router.set_weights(Weights(90, 5, 5))
    assert aws_env.live_weights() == Weights(90, 5, 5)
