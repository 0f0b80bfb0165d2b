"""`canary --target aws deploy --dry-run` through the real CLI against moto: a change set
listed and deleted for a new stack; for an existing one, moto computes no change (DESIGN.md
section 4), so the dry run says so and lists the parameter changes; nothing else changes."""

from __future__ import annotations

import json

import boto3
import pytest

from canary_deploy.aws.change_set import ChangeSetPreview
from canary_deploy.aws.stack import template_body
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner


def said(text: str) -> str:
    """Output with the console's line wrapping undone."""
    return " ".join(text.split())


def change_sets(aws_env: AwsEnv) -> list[str]:
    cf = boto3.client("cloudformation")
    if not aws_env.stack_exists():
        return []
    summaries = cf.list_change_sets(StackName=aws_env.stack_name)["Summaries"]
    return [s["ChangeSetName"] for s in summaries]


def test_a_new_stack_lists_every_resource_and_leaves_nothing_behind(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    result = cli("deploy", "--dry-run")
    assert result.exit_code == 0, result.stderr
    out = said(result.stdout)
    assert f"Dry run: a deploy would create {aws_env.stack_name} (aws); nothing was changed" in out
    assert "Add │ Listener │ AWS::ElasticLoadBal" in out  # the type wraps at 80 columns
    assert "Add │ ServiceCanary │ AWS::ECS::Service" in out
    assert "ImageURICanary │ - │ repo/app:v2" in out
    # moto lists conditional resources whatever their condition: said, not hidden.
    assert "LogGroup, RetainedLogGroup" in out and "without evaluating the conditions" in out
    assert not aws_env.stack_exists()  # the REVIEW_IN_PROGRESS stack went with its change set
    assert "cloudformation:CreateStack" not in aws_env.call_log.read_text()

    doc = json.loads(cli("deploy", "--dry-run", "-o", "json").stdout)
    assert doc["operation"] == "create" and doc["not_computed"] is None
    assert {
        "action": "Add",
        "logical_id": "Listener",
        "resource_type": "AWS::ElasticLoadBalancingV2::Listener",
    }.items() <= next(r for r in doc["resources"] if r["logical_id"] == "Listener").items()
    assert not aws_env.stack_exists()
    # Then the real deploy creates the stack under the same name.
    assert cli("deploy").exit_code == 0


def test_an_update_degrades_to_the_parameter_diff_and_changes_nothing(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0
    assert cli("set-weights", "80", "20").exit_code == 0
    before = aws_env.stack_parameters()
    calls_before = len(aws_env.call_log.read_text().split())

    result = cli("deploy", "--dry-run", "--canary-count", "2", IMAGE_URI_CANARY="repo/app:v3")
    assert result.exit_code == 0, result.stderr
    out, err = said(result.stdout), said(result.stderr)
    assert "a deploy would update" in out
    assert "ImageURICanary │ repo/app:v2 │ repo/app:v3" in out
    assert "DesiredCountCanary │ 1 │ 2" in out
    assert "StableWeight │ 95 │ 80" in out
    assert "CloudFormation could not compute the change set: it lists no resource change" in err
    assert "which moto's CloudFormation returns for every update" in err
    assert "reach no resource" not in err  # never true of AWS
    assert "the live values (set by API calls), recorded in the stack first" in out
    # Nothing changed: the stack, the listener, and no change set left.
    assert aws_env.stack_parameters() == before
    assert aws_env.live_weights() == Weights(80, 20)
    assert change_sets(aws_env) == []
    calls = set(aws_env.call_log.read_text().split()[calls_before:])
    assert "cloudformation:CreateChangeSet" in calls
    assert not calls & {
        "cloudformation:UpdateStack",
        "cloudformation:ExecuteChangeSet",
        "elasticloadbalancing:ModifyListener",
        "ecs:UpdateService",
    }

    doc = json.loads(
        cli("deploy", "--dry-run", "-o", "json", IMAGE_URI_CANARY="repo/app:v3").stdout
    )
    assert doc["resources"] is None
    assert doc["not_computed"].startswith("CloudFormation could not compute the change set")
    assert {"name": "ImageURICanary", "before": "repo/app:v2", "after": "repo/app:v3"} in (
        doc["parameters"]
    )


def test_env_and_secret_changes_are_named_in_an_update_dry_run(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy", "--env", "LOG_LEVEL=info", "--env", "OLD=1").exit_code == 0
    result = cli("deploy", "--dry-run", "--env", "LOG_LEVEL=debug", "--env", "NEW=x")
    assert result.exit_code == 0, result.stderr
    out = said(result.stdout)
    assert "The app's environment: LOG_LEVEL changes, NEW added, OLD removed" in out
    assert "debug" not in out  # names only: values may be sensitive
    same = said(cli("deploy", "--dry-run", "--env", "LOG_LEVEL=info", "--env", "OLD=1").stdout)
    assert "The app's environment" not in same


def test_ctrl_c_during_the_dry_run_leaves_no_change_set_nor_stack(
    aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ChangeSetPreview, "_wait", interrupted)
    result = cli("deploy", "--dry-run")
    assert result.exit_code != 0
    assert not aws_env.stack_exists()

    assert cli("deploy").exit_code == 0
    cli("deploy", "--dry-run", IMAGE_URI_CANARY="repo/app:v3")
    assert change_sets(aws_env) == []
    assert aws_env.stack_parameters()["ImageURICanary"] == "repo/app:v2"


def test_a_missing_ecr_image_fails_the_dry_run_too(aws_env: AwsEnv, cli: CliRunner) -> None:
    result = cli(
        "deploy",
        "--dry-run",
        IMAGE_URI_CANARY="123456789012.dkr.ecr.us-east-1.amazonaws.com/dry-run/none:v2",
    )
    assert result.exit_code == 1
    assert "repository dry-run/none does not exist" in result.stderr
    assert not aws_env.stack_exists()


def test_an_empty_stack_left_by_a_killed_dry_run_is_explained(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    # What a dry run killed with SIGKILL between the change set and its clean-up leaves.
    boto3.client("cloudformation").create_change_set(
        StackName=aws_env.stack_name,
        ChangeSetName="killed",
        ChangeSetType="CREATE",
        TemplateBody=template_body(),
        Parameters=[{"ParameterKey": "ImageURIStable", "ParameterValue": "repo/app:v1"}],
        Capabilities=["CAPABILITY_IAM"],
    )
    for args in (("deploy",), ("deploy", "--dry-run")):
        result = cli(*args)
        assert result.exit_code == 1
        assert "REVIEW_IN_PROGRESS: an empty stack" in result.stderr
        assert f"aws cloudformation delete-stack --stack-name {aws_env.stack_name}" in (
            result.stderr
        )
