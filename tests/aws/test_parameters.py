"""What a deploy sends CloudFormation, built from the release, the `[aws]` settings, the
live values and the network; and the updates refused before CloudFormation fails them."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_deploy.aws.parameters import (
    TEMPLATE_BODY_LIMIT,
    listener_url,
    named,
    release_parameters,
    stack_parameters,
    template_for,
)
from canary_deploy.aws.settings import AutoScalingSettings, AwsSettings
from canary_deploy.aws.stack import StackInfo
from canary_deploy.backend import ReleaseSpec
from canary_deploy.config import load_settings
from canary_deploy.errors import UsageError
from canary_deploy.weights import Weights
from tests.aws.test_template import PRODUCTION_DEFAULTS

SPEC = ReleaseSpec("repo/app:v1", "repo/app:v2", 2, 1, 8000, Weights(95, 5))
KEPT = {"VpcId": None, "SubnetIds": None, "AlbSubnetIds": None, "TaskSubnetIds": None}


def stack(**parameters: str) -> StackInfo:
    return StackInfo("demo", "UPDATE_COMPLETE", None, parameters, {})


def test_default_settings_give_the_templates_defaults() -> None:
    given = release_parameters(SPEC, AwsSettings())
    assert {name: given[name] for name in PRODUCTION_DEFAULTS if name in given} == {
        name: str(value)
        for name, value in PRODUCTION_DEFAULTS.items()
        if name not in ("AlbSubnetIds", "TaskSubnetIds")  # the network's, kept or resolved
    }


def test_a_stack_from_before_a_parameter_gets_its_default_unless_a_value_is_given() -> None:
    old = stack(ImageURIStable="repo/app:v1", VpcId="vpc-1", SubnetIds="subnet-1,subnet-2")
    given = stack_parameters(SPEC, AwsSettings(), old, live={}, network=KEPT)
    # Kept: the stack's previous network; the new subnet parameters take their defaults.
    assert (given["VpcId"], given["SubnetIds"]) == (None, None)
    assert "AlbSubnetIds" not in given and "TaskSubnetIds" not in given
    assert given["CertificateArn"] == ""  # a value: the stack learns it


def test_autoscaling_keeps_stables_count_within_its_bounds() -> None:
    scaled = AwsSettings(
        autoscaling=AutoScalingSettings(metric="cpu", min_capacity=3, max_capacity=6)
    )
    assert stack_parameters(SPEC, scaled, None, live={}, network={})["DesiredCountStable"] == "3"
    live = {"DesiredCountStable": "9"}  # scaled out before the bounds were lowered
    given = stack_parameters(SPEC, scaled, stack(DesiredCountStable="9"), live=live, network={})
    assert given["DesiredCountStable"] == "6"


def test_retaining_logs_cannot_change_on_an_existing_stack() -> None:
    with pytest.raises(UsageError, match="created with retain_logs = false") as caught:
        stack_parameters(SPEC, AwsSettings(retain_logs=True), stack(RetainLogs="false"), live={},
                         network={})  # fmt: skip
    assert caught.value.hint is not None and "RETAIN_LOGS" in caught.value.hint


def test_https_cannot_be_removed_in_place_but_a_certificate_can_change() -> None:
    https = stack(CertificateArn="arn:aws:acm:us-east-1:111122223333:certificate/a")
    with pytest.raises(UsageError, match="cannot go back to HTTP in place"):
        stack_parameters(SPEC, AwsSettings(), https, live={}, network={})
    other = AwsSettings(certificate_arn="arn:aws:acm:us-east-1:111122223333:certificate/b")
    assert stack_parameters(SPEC, other, https, live={}, network={})["CertificateArn"].endswith(
        "/b"
    )


def test_a_new_scheme_on_an_existing_stack_is_refused_with_the_reason_and_the_way_out() -> None:
    internal = AwsSettings(alb_scheme="internal")
    with pytest.raises(UsageError, match="cannot belong to two load balancers") as caught:
        stack_parameters(SPEC, internal, stack(AlbScheme="internet-facing"), live={}, network={})
    assert "load balancer is internet-facing" in caught.value.message
    assert caught.value.hint is not None and "delete the stack" in caught.value.hint
    with pytest.raises(UsageError, match="load balancer is internet-facing"):  # before AlbScheme
        stack_parameters(SPEC, internal, stack(), live={}, network={})
    same = stack_parameters(SPEC, internal, stack(AlbScheme="internal"), live={}, network={})
    assert same["AlbScheme"] == "internal"
    assert stack_parameters(SPEC, internal, None, live={}, network={})["AlbScheme"] == "internal"


PRODUCTION_STACK = stack(
    AlbScheme="internal",
    AssignPublicIp="DISABLED",
    AllowedIngressCidr="10.0.0.0/8",
    AutoScalingMetric="requests",
    AutoScalingMinCapacity="3",
    AutoScalingMaxCapacity="6",
    AutoScalingTargetValue="500",
    DeletionProtection="true",
    RetainLogs="true",
    CpuArchitecture="ARM64",
    TaskRoleArn="arn:aws:iam::111122223333:role/app",
    LogRetentionDays="90",
    ContainerInsights="disabled",
    HealthCheckSuccessCodes="200-299",
    HealthCheckGracePeriodSeconds="120",
    AccessLogsBucket="logs-bucket",
)


def test_an_existing_stack_keeps_the_production_settings_nobody_named() -> None:
    # A shell without ALB_SCHEME, ASSIGN_PUBLIC_IP, AUTOSCALING_* ...: nothing changes.
    live = {"DesiredCountStable": "9"}
    given = stack_parameters(SPEC, AwsSettings(), PRODUCTION_STACK, live=live, network={})
    kept = {name for name in PRODUCTION_STACK.parameters if name != "DesiredCountStable"}
    assert {name: given[name] for name in kept} == dict.fromkeys(kept)
    # Stable's count stays within the stack's own autoscaling bounds (3..6).
    assert given["DesiredCountStable"] == "6"


def test_a_production_setting_named_in_the_environment_or_the_file_is_applied(
    tmp_path: Path,
) -> None:
    config = tmp_path / "canary.toml"
    config.write_text(
        '[aws]\ncontainer_insights = "enhanced"\n[aws.autoscaling]\nmax_capacity = 8\n'
    )
    aws = load_settings(env={"ASSIGN_PUBLIC_IP": "ENABLED"}, config_file=config).aws
    given = stack_parameters(SPEC, aws, PRODUCTION_STACK, live={}, network={})
    assert given["AssignPublicIp"] == "ENABLED"
    assert given["ContainerInsights"] == "enhanced"
    assert given["AutoScalingMaxCapacity"] == "8"
    assert given["AutoScalingMinCapacity"] is None and given["AlbScheme"] is None


def test_the_loader_records_what_flags_environment_and_file_named(tmp_path: Path) -> None:
    config = tmp_path / "canary.toml"
    config.write_text("[aws]\nretain_logs = true\n")
    aws = load_settings(
        {"aws.task_cpu": 512}, env={"ALB_SCHEME": "internal"}, config_file=config
    ).aws
    assert named(aws, "alb_scheme") and named(aws, "retain_logs")
    assert not named(aws, "assign_public_ip") and not named(aws, "autoscaling.metric")
    assert not named(load_settings(env={}, config_file=tmp_path / "none.toml").aws, "alb_scheme")


def test_retaining_logs_on_a_stack_from_before_the_parameter_is_refused() -> None:
    old = stack(ImageURIStable="repo/app:v1")  # no RetainLogs: its log group goes with it
    with pytest.raises(UsageError, match="created with retain_logs = false"):
        stack_parameters(SPEC, AwsSettings(retain_logs=True), old, live={}, network={})
    assert stack_parameters(SPEC, AwsSettings(), old, live={}, network={})["RetainLogs"] == (
        "false"
    )


def test_the_url_is_https_when_the_stack_has_a_certificate() -> None:
    assert listener_url({"CertificateArn": "arn:x"}, "alb.example") == "https://alb.example/"
    assert listener_url({}, "alb.example") == "http://alb.example/"


def test_a_template_cloudformation_would_refuse_for_its_size_is_refused_with_the_reason() -> None:
    assert len(template_for(AwsSettings()).encode()) < TEMPLATE_BODY_LIMIT * 0.7  # room left
    huge = AwsSettings(env={f"VAR_{i}": "x" * 200 for i in range(100)})
    with pytest.raises(UsageError, match="CloudFormation takes at most 51,200"):
        template_for(huge)


def test_the_execution_role_may_pull_the_release_images_from_another_account_or_region() -> None:
    elsewhere = "999988887777.dkr.ecr.eu-west-1.amazonaws.com/shared/app:v2"
    body = template_for(AwsSettings(), ("repo/app:v1", elsewhere))
    assert '"arn:aws:ecr:eu-west-1:999988887777:repository/shared/app"' in body
    assert "repository/repo/app" not in body  # Docker Hub: no ECR grant
    assert template_for(AwsSettings(), ("repo/app:v1",)) == template_for(AwsSettings())
