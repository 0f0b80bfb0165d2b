"""The app's environment and secrets: validated where they are set, rendered into the
template as CloudFormation reads it, and readable by the execution role on exactly the
named ARNs."""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from canary_deploy.aws.stack import template_body
from canary_deploy.aws.task_config import TaskConfig, parse_pairs, render
from canary_deploy.config import load_settings
from canary_deploy.errors import UsageError
from tests.aws.test_checkov import ACCOUNT, APP
from tests.aws.test_template import _CfnLoader, yaml

SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-AbCdEf"
PARAMETER = f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/canary/api-token"


def rendered(config: TaskConfig) -> dict[str, Any]:
    doc = yaml.load(render(template_body(), config), Loader=_CfnLoader)
    assert isinstance(doc, dict)
    return doc


def container(doc: dict[str, Any], version: str) -> dict[str, Any]:
    definitions = doc["Resources"][f"TaskDefinition{version}"]["Properties"]
    (app,) = definitions["ContainerDefinitions"]
    assert isinstance(app, dict)
    return app


def execution_statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    (policy,) = doc["Resources"]["TaskExecutionRole"]["Properties"]["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    assert isinstance(statements, list)
    return statements


def test_both_task_definitions_get_the_environment_and_the_secrets_sorted() -> None:
    doc = rendered(APP)
    for version in ("Stable", "Canary"):  # the baseline runs stable's
        app = container(doc, version)
        assert app["Environment"] == [
            {"Name": "CANARY_VERSION", "Value": version.lower()},
            {"Name": "LOG_LEVEL", "Value": "info"},
            {"Name": "MODEL_NAME", "Value": "resnet-50"},
        ]
        assert app["Secrets"] == [
            {"Name": "API_TOKEN", "ValueFrom": APP.secrets["API_TOKEN"]},
            {"Name": "DB_PASSWORD", "ValueFrom": APP.secrets["DB_PASSWORD"]},
        ]


def test_the_execution_role_reads_exactly_the_named_secrets_and_keys() -> None:
    added = execution_statements(rendered(APP))[3:]
    assert added == [
        {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            # The secret itself, not the JSON key ECS reads from it; "db-AbCdEf" may also
            # be a partial ARN of a secret named so, hence both.
            "Resource": [SECRET, f"{SECRET}-??????"],
        },
        {"Effect": "Allow", "Action": "ssm:GetParameters", "Resource": [PARAMETER]},
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": list(APP.kms_key_arns)},
    ]


def test_without_settings_the_template_is_the_packaged_one() -> None:
    marks = "# canary-deploy:"
    unmarked = [line for line in template_body().splitlines() if marks not in line]
    assert render(template_body(), TaskConfig()).splitlines() == unmarked
    doc = rendered(TaskConfig())
    assert "Secrets" not in container(doc, "Stable")
    assert len(execution_statements(doc)) == 3  # no secret access at all


def test_values_survive_whatever_characters_they_hold() -> None:
    odd = 'a "quoted" value: with # and \\ and\nnewline, ünïcödé, {braces} & *star'
    app = container(rendered(TaskConfig(environment={"ODD": odd})), "Stable")
    assert app["Environment"][1] == {"Name": "ODD", "Value": odd}


def test_the_rendered_template_is_lint_clean() -> None:
    body = render(template_body(), APP)
    assert [str(m) for m in lint(body, config=ManualArgs(regions=["us-east-1"]))] == []


def test_env_and_secret_flags_need_name_equals_value() -> None:
    assert parse_pairs(["A=1", "B=x=y"], "--env") == {"A": "1", "B": "x=y"}
    with pytest.raises(UsageError, match=r"--env 'LOG_LEVEL': expected NAME=VALUE"):
        parse_pairs(["LOG_LEVEL"], "--env")
    with pytest.raises(UsageError, match="--secret '=arn"):
        parse_pairs(["=arn"], "--secret")


def test_the_release_repositories_are_pullable_by_the_execution_role() -> None:
    other = "arn:aws:ecr:eu-west-1:999988887777:repository/shared/app"
    doc = rendered(TaskConfig(image_repositories=(other, other)))
    assert execution_statements(doc)[3:] == [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Resource": [other],
        }
    ]
    body = render(template_body(), TaskConfig(image_repositories=(other,)))
    assert [str(m) for m in lint(body, config=ManualArgs(regions=["us-east-1"]))] == []


def test_a_name_given_twice_in_the_flags_is_refused_with_both_values() -> None:
    with pytest.raises(UsageError, match=r"--env A is given twice \(A='1' and A='2'\)"):
        parse_pairs(["A=1", "B=x", "A=2"], "--env")
    with pytest.raises(UsageError, match="--secret DB is given twice"):
        parse_pairs([f"DB={SECRET}", f"DB={PARAMETER}"], "--secret")


def test_a_partial_secret_arn_whose_name_ends_like_a_suffix_is_readable_either_way() -> None:
    backup = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod-db-backup"
    plain = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/db"
    config = TaskConfig(secrets={"BACKUP": f"{backup}:password::", "DB": plain})
    (granted,) = [
        s
        for s in execution_statements(rendered(config))
        if s["Action"] == "secretsmanager:GetSecretValue"
    ]
    assert granted["Resource"] == [backup, f"{backup}-??????", f"{plain}-??????"]


def test_multi_region_kms_keys_are_accepted_and_a_bad_one_is_named_in_plain_words() -> None:
    mrk = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
    assert aws_settings(secrets_kms_key_arns=[mrk]).secrets_kms_key_arns == (mrk,)
    with pytest.raises(UsageError, match="not KMS key ARNs") as caught:
        aws_settings(secrets_kms_key_arns=[mrk, "alias/aws/ssm"])
    assert "('" not in caught.value.message and ",)" not in caught.value.message


def aws_settings(**aws: Any) -> Any:
    return load_settings(env={}, flags={f"aws.{k}": v for k, v in aws.items()}).aws


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"env": {"1ST": "x"}}, "'1ST' is not a variable name"),
        ({"env": {"CANARY_VERSION": "x"}}, "CANARY_VERSION is set by the stack itself"),
        ({"secrets": {"DB": "db-password"}}, "'db-password' is not a Secrets Manager secret ARN"),
        ({"secrets": {"DB": SECRET}, "env": {"DB": "x"}}, "DB named in both env and secrets"),
        ({"certificate_arn": "arn:aws:iam::1:cert"}, "not an ACM certificate ARN"),
        ({"task_role_arn": "my-role"}, "not an IAM role ARN"),
        ({"secrets_kms_key_arns": ["alias/aws/ssm"]}, "not KMS key ARNs"),
        ({"access_logs_bucket": "Logs_Bucket"}, "not an S3 bucket name"),
        ({"log_retention_days": 10}, "CloudWatch Logs keeps logs 1, 3, 5"),
        ({"autoscaling": {"metric": "cpu", "min_capacity": 5, "max_capacity": 2}}, "above max"),
        ({"autoscaling": {"metric": "cpu", "min_capacity": 0}}, "min_capacity must be 1 or more"),
    ],
)
def test_bad_settings_are_refused_with_what_is_wrong(setting: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        aws_settings(**setting)
    assert "aws" in caught.value.message.split(":")[1]  # names the setting (or its table)


def test_settings_come_from_the_environment_too() -> None:
    env = {
        "CERTIFICATE_ARN": f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/abc-123",
        "TASK_SUBNET_IDS": "subnet-a, subnet-b",
        "ASSIGN_PUBLIC_IP": "DISABLED",
        "AUTOSCALING_METRIC": "cpu",
        "AUTOSCALING_MAX_CAPACITY": "10",
        "RETAIN_LOGS": "true",
    }
    aws = load_settings(env=env).aws
    assert aws.certificate_arn == env["CERTIFICATE_ARN"]
    assert aws.task_subnet_ids == ("subnet-a", "subnet-b")
    assert (aws.assign_public_ip, aws.retain_logs) == ("DISABLED", True)
    assert (aws.autoscaling.metric, aws.autoscaling.max_capacity) == ("cpu", 10)
