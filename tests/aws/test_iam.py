"""The operator's IAM policy (docs/operator-policy.json) allows what `canary` does: every
API call the CLI makes (recorded through botocore's `provide-client-params` event,
CANARY_AWS_CALL_LOG; every test using `aws_env` is checked the same way when it ends) and
everything CloudFormation does with the operator's credentials for the template's
resources (the handler permissions of AWS's resource schemas, shipped with cfn-lint)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import cfnlint
import pytest
from botocore.stub import Stubber

from canary_deploy.aws.clients import CALL_LOG_ENV, open_session
from canary_deploy.aws.emulator import FAILING_IMAGE_MARK
from canary_deploy.aws.stack import CAPABILITIES
from canary_deploy.aws.workload import EcsWorkload
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.iam_policy import POLICY_PATH, allows, load_policy, not_allowed, recorded_calls
from tests.aws.stubs import ERRORS, OUTPUTS
from tests.aws.test_running_image import DIGEST, SERVICES
from tests.aws.test_status import running_task
from tests.aws.test_template import load

DOCS = POLICY_PATH.parent / "aws.md"
SCHEMAS = Path(cfnlint.__file__).parent / "data" / "schemas"
HANDLERS = ("create", "read", "update", "delete")
# Handler permissions for features the template does not use: the handlers call them only
# when the property is set. Left out to keep the policy minimal.
NOT_NEEDED = {
    "s3:REST.PUT.OBJECT": "not an IAM action (log delivery to S3)",
    "firehose:TagDeliveryStream": "no log delivery to Firehose",
    "logs:CreateLogDelivery": "no log delivery",
    "logs:PutDataProtectionPolicy": "no data protection policy on the log group",
    "logs:DeleteDataProtectionPolicy": "no data protection policy on the log group",
    "logs:PutIndexPolicy": "no field index policy on the log group",
    "logs:DeleteIndexPolicy": "no field index policy on the log group",
    "logs:PutResourcePolicy": "no resource policy on the log group",
    "logs:DeleteResourcePolicy": "no resource policy on the log group",
    "logs:AssociateKmsKey": "no KMS key on the log group",
    "logs:DisassociateKmsKey": "no KMS key on the log group",
    "logs:PutBearerTokenAuthentication": "no bearer token authentication",
    "logs:PutLogGroupDeletionProtection": "no deletion protection setting",
    "kms:DescribeKey": "no KMS key on the cluster",
    "ecs:PutAccountSetting": "account-wide settings are not the stack's business",
    "ecs:PutAccountSettingDefault": "account-wide settings are not the stack's business",
    "ecs:PutClusterCapacityProviders": "Fargate launch type, no capacity providers",
    "elasticloadbalancing:ModifyCapacityReservation": "no LCU reservation",
    "elasticloadbalancing:ModifyIpPools": "no IPAM pools",
    "ec2:DescribeIpamPools": "no IPAM pools",
    "cognito-idp:DescribeUserPoolClient": "no authenticate-cognito listener action",
    "iam:AttachRolePolicy": "the role has inline policies only",
    "iam:DetachRolePolicy": "the role has inline policies only",
    "iam:PutRolePermissionsBoundary": "no permissions boundary",
    "iam:DeleteRolePermissionsBoundary": "no permissions boundary",
    "application-autoscaling:PutScheduledAction": "no scheduled scaling",
    "application-autoscaling:DeleteScheduledAction": "no scheduled scaling",
    "application-autoscaling:DescribeScheduledActions": "no scheduled scaling",
    "lambda:PutProvisionedConcurrencyConfig": "the scalable target is an ECS service",
    "lambda:GetProvisionedConcurrencyConfig": "the scalable target is an ECS service",
    "lambda:DeleteProvisionedConcurrencyConfig": "the scalable target is an ECS service",
}
# CloudFormation asks for CAPABILITY_NAMED_IAM only for IAM resources with custom names.
IAM_NAME_PROPERTIES = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
}


def test_every_call_the_cli_makes_is_in_the_policy(aws_env: AwsEnv, cli: CliRunner) -> None:
    for args, env in [
        (("deploy", "--stickiness", "600"), {}),
        (("set-weights", "75", "25"), {}),
        (("status",), {}),
        (("rollback",), {}),
        (("deploy", "--dry-run"), {"IMAGE_URI_CANARY": "repo/app:v3"}),
        (("deploy",), {"IMAGE_URI_CANARY": "repo/app:v3"}),
        (("deploy",), {"IMAGE_URI_CANARY": f"repo/app:v4-{FAILING_IMAGE_MARK}"}),
        (("status", "--output", "json"), {}),
        (("route", "add", "--header", "X-Canary=always", "--to", "canary"), {}),
        (("route", "list"), {}),
        (("route", "add", "--cookie", "tester=yes", "--to", "stable"), {}),
        (("route", "delete", "1"), {}),
        (("delete", "--yes"), {}),
    ]:
        cli(*args, **env)
    calls = recorded_calls(aws_env.call_log)
    # The recording sees the calls that matter (reads and writes of every kind).
    assert {
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:DeleteStack",
        "cloudformation:DescribeStackEvents",
        "cloudformation:CreateChangeSet",
        "cloudformation:DescribeChangeSet",
        "cloudformation:DeleteChangeSet",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:CreateRule",
        "elasticloadbalancing:DeleteRule",
        "elasticloadbalancing:DescribeTargetHealth",
        "ecs:DescribeTaskDefinition",
        "ec2:DescribeSubnets",
        "cloudwatch:GetMetricData",
    } <= calls
    assert not_allowed(load_policy(), calls) == []


def test_the_calls_for_the_images_tasks_run_are_in_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto starts no task, so the CLI walk never lists one: the same recorded session,
    # with ECS answers stubbed.
    log = tmp_path / "calls.log"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    session, region = open_session(region="us-east-1", profile=None, stack_name="demo")
    ecs = session.client("ecs", region_name=region, aws_access_key_id="x",
                         aws_secret_access_key="x")  # fmt: skip
    stub = Stubber(ecs)
    stub.add_response("describe_services", SERVICES)
    for _ in SERVICES["services"]:
        stub.add_response("list_tasks", {"taskArns": ["t1"]})
    stub.add_response(
        "describe_tasks", {"tasks": [running_task("t1", "demo-canary", "repo/app:v2", DIGEST)]}
    )
    with stub:
        assert EcsWorkload(ecs, lambda: OUTPUTS, ERRORS).running_images() == {
            "canary": (f"repo/app@{DIGEST}",)
        }
    calls = recorded_calls(log)
    assert calls == {"ecs:DescribeServices", "ecs:ListTasks", "ecs:DescribeTasks"}
    assert not_allowed(load_policy(), calls) == []


def test_a_call_the_policy_lacks_is_named() -> None:
    policy = load_policy()
    for statement in policy["Statement"]:
        if isinstance(statement["Action"], list):
            statement["Action"] = [
                a for a in statement["Action"] if a != "elasticloadbalancing:ModifyListener"
            ]
    calls = {"elasticloadbalancing:ModifyListener", "ecs:ListTasks", "s3:GetObject"}
    assert not_allowed(policy, calls) == ["elasticloadbalancing:ModifyListener", "s3:GetObject"]


def test_a_transaction_needs_the_actions_of_its_items() -> None:
    policy = load_policy()
    assert allows(policy, "dynamodb:TransactWriteItems")
    statement = next(s for s in policy["Statement"] if s["Sid"] == "RolloutStateTable")
    statement["Action"].remove("dynamodb:ConditionCheckItem")
    assert not allows(policy, "dynamodb:TransactWriteItems")


def handler_permissions(resource_type: str) -> set[str]:
    providers = json.loads((SCHEMAS / "providers" / "us-east-1.json").read_text())
    schema = json.loads((SCHEMAS / "resources" / f"{providers[resource_type]}.json").read_text())
    return {p for h in HANDLERS for p in schema["handlers"][h]["permissions"]}


def resources() -> dict[str, Any]:
    found = load()["Resources"]
    assert isinstance(found, dict)
    return found


def test_the_policy_allows_what_cloudformation_does_for_the_templates_resources() -> None:
    policy = load_policy()
    types = {r["Type"] for r in resources().values()}
    needed = {p for t in types for p in handler_permissions(t)} - set(NOT_NEEDED)
    assert not_allowed(policy, needed) == []
    # Every exclusion is still one a handler of ours lists (none goes stale silently).
    listed = {p for t in types for p in handler_permissions(t)}
    assert set(NOT_NEEDED) <= listed


def test_the_stack_needs_capability_iam_not_named_iam() -> None:
    assert CAPABILITIES == ["CAPABILITY_IAM"]
    for name, resource in resources().items():
        name_property = IAM_NAME_PROPERTIES.get(resource["Type"])
        assert name_property is None or name_property not in resource.get("Properties", {}), (
            f"{name} has a custom name: the stack would need CAPABILITY_NAMED_IAM"
        )


def test_docs_show_the_policy_file_verbatim() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert json.loads(POLICY_PATH.read_text()) in [json.loads(block) for block in blocks]
