"""The production settings through the real `canary` command, against the moto server:
HTTPS with a certificate from moto's ACM, private task subnets behind an internal load
balancer, the app's environment and secrets in the task definitions, autoscaling of
stable; and the prototype's stack when none is set.

What moto cannot do is not asserted: it starts no task and never scales (a scale-out is
made by hand with UpdateService), and its CloudFormation needed the emulator's patches
(`aws/emulator_resources.py`) to keep load balancer attributes, task roles, service
networks and to know Application Auto Scaling at all."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import boto3
import pytest

from canary_deploy.aws.target import AwsTarget
from canary_deploy.config import load_settings
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.stubs import RecordingProgress
from tests.aws.test_rollout import steady
from tests.aws.test_routes_e2e import listed

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def certificate() -> str:
    arn = boto3.client("acm").request_certificate(DomainName="api.example.com")
    return str(arn["CertificateArn"])


def load_balancer(aws_env: AwsEnv) -> dict[str, Any]:
    arn = aws_env.outputs()["LoadBalancerArn"]
    (found,) = boto3.client("elbv2").describe_load_balancers(LoadBalancerArns=[arn])[
        "LoadBalancers"
    ]
    return dict(found)


def listeners(aws_env: AwsEnv) -> dict[int, dict[str, Any]]:
    arn = aws_env.outputs()["LoadBalancerArn"]
    found = boto3.client("elbv2").describe_listeners(LoadBalancerArn=arn)["Listeners"]
    return {int(listener["Port"]): dict(listener) for listener in found}


def balancer_attributes(aws_env: AwsEnv) -> dict[str, str]:
    arn = aws_env.outputs()["LoadBalancerArn"]
    found = boto3.client("elbv2").describe_load_balancer_attributes(LoadBalancerArn=arn)
    return {a["Key"]: a["Value"] for a in found["Attributes"]}


def service(aws_env: AwsEnv, role: str) -> dict[str, Any]:
    outputs = aws_env.outputs()
    (found,) = boto3.client("ecs").describe_services(
        cluster=outputs["ClusterName"], services=[outputs[f"Service{role}Name"]]
    )["services"]
    return dict(found)


def task_definition(aws_env: AwsEnv, role: str) -> dict[str, Any]:
    arn = service(aws_env, role)["taskDefinition"]
    found = boto3.client("ecs").describe_task_definition(taskDefinition=arn)
    return dict(found["taskDefinition"])


def scalable_targets() -> list[dict[str, Any]]:
    found = boto3.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="ecs"
    )
    return [dict(t) for t in found["ScalableTargets"]]


def stable_resource_id(aws_env: AwsEnv) -> str:
    outputs = aws_env.outputs()
    return f"service/{outputs['ClusterName']}/{outputs['ServiceStableName']}"


def test_without_production_settings_the_stack_is_the_prototypes(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0
    # HTTP on port 80 only, internet-facing, tasks with public IPs in the ALB's subnets.
    assert {port: li["Protocol"] for port, li in listeners(aws_env).items()} == {80: "HTTP"}
    assert listeners(aws_env)[80]["ListenerArn"] == aws_env.outputs()["ListenerArn"]
    assert load_balancer(aws_env)["Scheme"] == "internet-facing"
    alb_subnets = sorted(z["SubnetId"] for z in load_balancer(aws_env)["AvailabilityZones"])
    network = service(aws_env, "Stable")["networkConfiguration"]["awsvpcConfiguration"]
    assert (network["assignPublicIp"], sorted(network["subnets"])) == ("ENABLED", alb_subnets)
    # What checkov asked for and costs nothing: invalid headers dropped; nothing else on.
    attributes = balancer_attributes(aws_env)
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["deletion_protection.enabled"] == "false"
    assert attributes["access_logs.s3.enabled"] == "false"
    stable = task_definition(aws_env, "Stable")
    assert "taskRoleArn" not in stable and "runtimePlatform" not in stable
    assert stable["containerDefinitions"][0]["environment"] == [
        {"name": "CANARY_VERSION", "value": "stable"}
    ]
    assert stable_resource_id(aws_env) not in [t["ResourceId"] for t in scalable_targets()]
    status = cli("status")
    assert f"http://{aws_env.outputs()['ALBDNS']}/" in status.stdout


def test_a_certificate_puts_the_weighted_split_on_https_and_port_80_redirects(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    cert = certificate()
    assert cli("deploy", CERTIFICATE_ARN=cert).exit_code == 0
    https, http = listeners(aws_env)[443], listeners(aws_env)[80]
    assert aws_env.outputs()["ListenerArn"] == https["ListenerArn"]
    assert (https["Protocol"], https["SslPolicy"]) == ("HTTPS", TLS_POLICY)
    assert [c["CertificateArn"] for c in https["Certificates"]] == [cert]
    (redirect,) = http["DefaultActions"]
    assert redirect["Type"] == "redirect"
    assert (redirect["RedirectConfig"]["Protocol"], redirect["RedirectConfig"]["Port"]) == (
        "HTTPS",
        "443",
    )
    # The tool drives the HTTPS listener: weights, tester routes, the URL status shows.
    assert cli("set-weights", "75", "25").exit_code == 0
    assert aws_env.live_weights() == Weights(75, 25)
    assert cli("route", "add", "--header", "X-Canary=always", "--to", "canary").exit_code == 0
    rules = boto3.client("elbv2").describe_rules(ListenerArn=https["ListenerArn"])["Rules"]
    assert {r["Priority"] for r in rules} >= {"50000", "1"}  # tester groups' rule and route
    assert f"https://{aws_env.outputs()['ALBDNS']}/" in cli("status").stdout


def test_adding_a_certificate_keeps_the_listener_its_weights_and_its_tester_routes(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0
    listener_arn = aws_env.outputs()["ListenerArn"]
    assert cli("set-weights", "80", "20").exit_code == 0
    assert cli("route", "add", "--cookie", "tester=yes", "--to", "canary").exit_code == 0

    assert cli("deploy", CERTIFICATE_ARN=certificate()).exit_code == 0

    # The same listener, updated in place to HTTPS on 443: nothing to move.
    assert aws_env.outputs()["ListenerArn"] == listener_arn
    assert listeners(aws_env)[443]["ListenerArn"] == listener_arn
    assert listeners(aws_env)[80]["DefaultActions"][0]["Type"] == "redirect"
    assert aws_env.live_weights() == Weights(80, 20)
    assert [r["to"] for r in listed(cli)] == ["canary"]

    # Back to HTTP in place would fail halfway in CloudFormation: refused before it.
    back = cli("deploy", CERTIFICATE_ARN="")
    assert back.exit_code == 2, back
    assert "cannot go back to HTTP in place" in back.stderr
    assert listeners(aws_env)[443]["ListenerArn"] == listener_arn


def private_network() -> tuple[str, list[str], list[str]]:
    """A VPC with two subnets for the load balancer and two private ones for the tasks."""
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{n}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for n, zone in (
            (1, "us-east-1a"),
            (2, "us-east-1b"),
            (11, "us-east-1a"),
            (12, "us-east-1b"),
        )
    ]
    return vpc, subnets[:2], subnets[2:]


def test_private_task_subnets_without_public_ips_behind_an_internal_balancer(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    vpc, alb_subnets, task_subnets = private_network()
    deployed = cli(
        "deploy",
        VPC_ID=vpc,
        ALB_SUBNET_IDS=",".join(alb_subnets),
        TASK_SUBNET_IDS=",".join(task_subnets),
        ASSIGN_PUBLIC_IP="DISABLED",
        ALB_SCHEME="internal",
    )
    assert deployed.exit_code == 0, deployed
    balancer = load_balancer(aws_env)
    assert balancer["Scheme"] == "internal"
    assert sorted(z["SubnetId"] for z in balancer["AvailabilityZones"]) == sorted(alb_subnets)
    for role in ("Stable", "Canary", "Baseline"):
        network = service(aws_env, role)["networkConfiguration"]["awsvpcConfiguration"]
        assert network["assignPublicIp"] == "DISABLED"
        assert sorted(network["subnets"]) == sorted(task_subnets)
    # A later deploy that names no network keeps this one, and the scheme and public IPs
    # too: a shell without ALB_SCHEME must not make the balancer public.
    assert cli("deploy", IMAGE_URI_CANARY="repo/app:v3").exit_code == 0
    network = service(aws_env, "Canary")["networkConfiguration"]["awsvpcConfiguration"]
    assert sorted(network["subnets"]) == sorted(task_subnets)
    assert network["assignPublicIp"] == "DISABLED"
    assert aws_env.stack_parameters()["AlbScheme"] == "internal"
    assert load_balancer(aws_env)["Scheme"] == "internal"
    # Named: refused before any change (AWS fails it halfway: shared target groups).
    refused = cli("deploy", ALB_SCHEME="internet-facing")
    assert refused.exit_code == 2, refused
    assert "cannot belong to two load balancers" in refused.stderr
    assert aws_env.stack_parameters()["AlbScheme"] == "internal"


def test_task_subnets_need_a_vpc(aws_env: AwsEnv, cli: CliRunner) -> None:
    refused = cli("deploy", TASK_SUBNET_IDS="subnet-1,subnet-2")
    assert refused.exit_code == 2
    assert "without VPC_ID" in refused.stderr
    assert not aws_env.stack_exists()


def secrets() -> tuple[str, str]:
    secret = boto3.client("secretsmanager").create_secret(Name="db", SecretString="s3cret")
    boto3.client("ssm").put_parameter(Name="/canary/token", Value="t0ken", Type="SecureString")
    parameter = "arn:aws:ssm:us-east-1:123456789012:parameter/canary/token"
    return str(secret["ARN"]), parameter


def test_env_and_secrets_reach_every_task_definition_and_survive_a_promotion(
    aws_env: AwsEnv, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, parameter = secrets()
    config = tmp_path / "canary.toml"
    config.write_text(
        f'[aws]\nenv = {{ MODEL_NAME = "resnet-50" }}\nsecrets = {{ DB = "{secret}" }}\n'
    )
    deployed = cli(
        "deploy", "--env", "LOG_LEVEL=debug", "--secret", f"TOKEN={parameter}",
        CANARY_CONFIG=str(config),
    )  # fmt: skip
    assert deployed.exit_code == 0, deployed
    environment = [
        {"name": "CANARY_VERSION", "value": "stable"},
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "MODEL_NAME", "value": "resnet-50"},
    ]
    expected_secrets = [
        {"name": "DB", "valueFrom": secret},
        {"name": "TOKEN", "valueFrom": parameter},
    ]
    for role in ("Stable", "Canary", "Baseline"):  # the baseline runs stable's
        (app,) = task_definition(aws_env, role)["containerDefinitions"]
        version = "canary" if role == "Canary" else "stable"
        assert app["environment"] == [{**environment[0], "value": version}, *environment[1:]]
        assert app["secrets"] == expected_secrets
    # The execution role reads exactly those two (a secret's name ending like Secrets
    # Manager's suffix, as every full ARN's does, is granted as a partial one too).
    role_name = task_definition(aws_env, "Stable")["executionRoleArn"].rpartition("/")[2]
    policy = boto3.client("iam").get_role_policy(
        RoleName=role_name, PolicyName="pull-images-and-write-logs"
    )["PolicyDocument"]
    if isinstance(policy, str):  # moto returns the inline policy of a stack's role as repr()
        policy = ast.literal_eval(policy)
    secret_access = ("secretsmanager:", "ssm:", "kms:")
    statements = policy["Statement"]
    granted = {
        s["Action"]: s["Resource"] for s in statements if str(s["Action"]).startswith(secret_access)
    }
    assert granted == {
        "secretsmanager:GetSecretValue": [secret, f"{secret}-??????"],
        "ssm:GetParameters": [parameter],
    }

    # A promotion changes stable's image and nothing else: the environment stays.
    monkeypatch.setenv("CANARY_CONFIG", str(config))
    target = AwsTarget.from_settings(load_settings())
    steady(target, monkeypatch)
    target.workload.promote("repo/app:v2", RecordingProgress())
    # Stable's newest revision (moto does not move the service onto it: it updates only
    # resources that name a changed parameter themselves).
    (app,) = boto3.client("ecs").describe_task_definition(
        taskDefinition=f"{aws_env.stack_name}-stable"
    )["taskDefinition"]["containerDefinitions"]
    assert app["image"] == "repo/app:v2"
    assert app["environment"] == environment
    assert app["secrets"] == expected_secrets


def test_a_bad_secret_or_env_flag_is_refused_before_anything_is_created(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    no_equals = cli("deploy", "--env", "LOG_LEVEL")
    assert no_equals.exit_code == 2
    assert "--env 'LOG_LEVEL': expected NAME=VALUE" in no_equals.stderr
    not_an_arn = cli("deploy", "--secret", "DB=my-db-password")
    assert not_an_arn.exit_code == 2
    assert "not a Secrets Manager secret ARN" in not_an_arn.stderr
    assert not aws_env.stack_exists()


def test_stable_autoscales_and_a_deploy_keeps_the_count_autoscaling_set(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    scaling = {
        "AUTOSCALING_METRIC": "cpu",
        "AUTOSCALING_MIN_CAPACITY": "2",
        "AUTOSCALING_MAX_CAPACITY": "6",
        "AUTOSCALING_TARGET_VALUE": "55",
    }
    assert cli("deploy", **scaling).exit_code == 0
    (target,) = [t for t in scalable_targets() if t["ResourceId"] == stable_resource_id(aws_env)]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    policies = boto3.client("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId=stable_resource_id(aws_env)
    )["ScalingPolicies"]
    (policy,) = policies
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 55
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "ECSServiceAverageCPUUtilization"
    )
    # Only stable: the canary and the baseline are sized by rollouts.
    canary_id = (
        f"service/{aws_env.outputs()['ClusterName']}/{aws_env.outputs()['ServiceCanaryName']}"
    )
    assert canary_id not in [t["ResourceId"] for t in scalable_targets()]

    # Autoscaling scales stable out (moto never does: made by hand); a deploy keeps it.
    outputs = aws_env.outputs()
    boto3.client("ecs").update_service(
        cluster=outputs["ClusterName"], service=outputs["ServiceStableName"], desiredCount=5
    )
    redeployed = cli("deploy", IMAGE_URI_CANARY="repo/app:v3", **scaling)
    assert redeployed.exit_code == 0, redeployed
    assert "Keeping stable's 5 live task(s) in the stack update" in redeployed.stderr
    # Recorded first, so that a failed update's rollback never scales stable back in.
    assert "Recording the live stable task count 5 (the stack said 2)" in redeployed.stderr
    assert aws_env.stack_parameters()["DesiredCountStable"] == "5"
    assert service(aws_env, "Stable")["desiredCount"] == 5

    # Turned off: no scaling left behind, and stable takes the settings' count again.
    off = cli("deploy", AUTOSCALING_METRIC="off")
    assert off.exit_code == 0, off
    assert "Recording" not in off.stderr  # the settings' count is no live value
    assert stable_resource_id(aws_env) not in [t["ResourceId"] for t in scalable_targets()]
    assert aws_env.stack_parameters()["DesiredCountStable"] == "2"


def test_retaining_logs_is_chosen_when_the_stack_is_created(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0
    refused = cli("deploy", RETAIN_LOGS="true")
    assert refused.exit_code == 2
    assert "retain_logs" in refused.stderr and "cannot change on an existing stack" in (
        refused.stderr
    )


def test_a_retained_log_group_is_named_at_delete_and_blocks_a_re_create_before_any_change(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy", RETAIN_LOGS="true").exit_code == 0
    deleted = cli("delete", "--yes")
    assert deleted.exit_code == 0, deleted
    group = f"/ecs/{aws_env.stack_name}"
    assert f"Kept log group {group}" in deleted.stderr
    again = cli("deploy", RETAIN_LOGS="true")
    assert again.exit_code == 2, again
    assert f"log group {group} already exists" in again.stderr
    assert "delete-log-group" in again.stderr and "STACK_NAME" in again.stderr
    assert not aws_env.stack_exists()
    boto3.client("logs").delete_log_group(logGroupName=group)


def test_a_certificate_of_another_region_is_refused_before_any_change(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    elsewhere = "arn:aws:acm:eu-west-1:123456789012:certificate/abc-123"
    refused = cli("deploy", CERTIFICATE_ARN=elsewhere, AWS_REGION="us-east-1")
    assert refused.exit_code == 2, refused
    assert "is in eu-west-1, and the stack is in us-east-1" in refused.stderr
    assert not aws_env.stack_exists()


def test_deletion_protection_is_turned_off_by_a_deploy_before_a_delete(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy", DELETION_PROTECTION="true").exit_code == 0
    assert balancer_attributes(aws_env)["deletion_protection.enabled"] == "true"
    refused = cli("delete", "--yes")
    assert refused.exit_code == 2
    assert "deletion protection on" in refused.stderr and "DELETION_PROTECTION=false" in (
        refused.stderr
    )
    assert "canary --target aws deploy" in refused.stderr
    assert aws_env.stack_exists()
    assert cli("deploy", DELETION_PROTECTION="false").exit_code == 0
    assert cli("delete", "--yes").exit_code == 0
    assert not aws_env.stack_exists()
