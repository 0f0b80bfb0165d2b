"""checkov finds nothing in the stack's template that is not skipped inline with a reason,
with the prototype's defaults and with every production setting on, environment and
secrets rendered in. checkov lives in its own virtualenv (`make test` installs it into
.venv-checkov): a missing checkov fails the suite, it never skips it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from canary_deploy.aws.stack import template_body
from canary_deploy.aws.task_config import TaskConfig, render
from tests.aws.test_template import load

REPO = Path(__file__).resolve().parents[2]
# Every skip in the template, by resource: a new one is a decision this test makes visible.
SKIPPED = {
    ("CKV_AWS_260", "AWS::EC2::SecurityGroup.AlbSecurityGroup"),
    ("CKV_AWS_260", "AWS::EC2::SecurityGroupIngress.AlbHttpsIngress"),
    ("CKV_AWS_158", "AWS::Logs::LogGroup.LogGroup"),
    ("CKV_AWS_158", "AWS::Logs::LogGroup.RetainedLogGroup"),
    ("CKV_AWS_91", "AWS::ElasticLoadBalancingV2::LoadBalancer.LoadBalancer"),
    ("CKV_AWS_2", "AWS::ElasticLoadBalancingV2::Listener.Listener"),
    ("CKV_AWS_103", "AWS::ElasticLoadBalancingV2::Listener.Listener"),
}
ACCOUNT = "111122223333"
PRODUCTION = {
    "CertificateArn": f"arn:aws:acm:us-east-1:{ACCOUNT}:certificate/0b5e2c1a-1111-2222",
    "AssignPublicIp": "DISABLED",
    "AlbScheme": "internal",
    "TaskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/ecs-canary-demo-stack-task",
    "CpuArchitecture": "ARM64",
    "RetainLogs": '"true"',
    "DeletionProtection": '"true"',
    "AccessLogsBucket": "canary-alb-logs",
    "AutoScalingMetric": "requests",
}
APP = TaskConfig(
    environment={"LOG_LEVEL": "info", "MODEL_NAME": "resnet-50"},
    secrets={
        "DB_PASSWORD": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:db-AbCdEf:password::",
        "API_TOKEN": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/canary/api-token",
    },
    kms_key_arns=(f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",),
)


def checkov_command() -> str:
    """CHECKOV, else the Makefile's .venv-checkov, else one on PATH; else the test fails."""
    found = os.environ.get("CHECKOV") or str(REPO / ".venv-checkov" / "bin" / "checkov")
    if Path(found).is_file():
        return found
    on_path = shutil.which("checkov")
    if on_path:
        return on_path
    pytest.fail(
        f"checkov is not installed ({found} is missing): `make test` installs it into "
        ".venv-checkov (or run `make .venv-checkov/bin/checkov`, or set CHECKOV)"
    )


def run_checkov(template: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [checkov_command(), "--file", str(template), "--framework", "cloudformation",
         "--output", "json", "--skip-download"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # 1: findings, shown below
    report = json.loads(proc.stdout)
    assert isinstance(report, dict), proc.stdout[:500]
    return report


def with_defaults(body: str, defaults: dict[str, str]) -> str:
    """The template with these parameters' defaults changed (checkov reads the defaults)."""
    for name, value in defaults.items():
        pattern = rf"(^  {name}:\n(?:    .*\n)*?    Default: ).*$"
        body, count = re.subn(pattern, rf"\g<1>{value}", body, count=1, flags=re.MULTILINE)
        assert count == 1, name
    return body


def findings(report: dict[str, Any]) -> list[str]:
    return [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]


def skips(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["check_id"], c["resource"]) for c in report["results"]["skipped_checks"]}


@pytest.mark.parametrize("variant", ["prototype defaults", "production settings and secrets"])
def test_checkov_finds_nothing_that_is_not_skipped_with_a_reason(
    variant: str, tmp_path: Path
) -> None:
    body = template_body()
    if variant != "prototype defaults":
        body = render(with_defaults(body, PRODUCTION), APP)
    template = tmp_path / "canary-stack.yml"
    template.write_text(body)
    report = run_checkov(template)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] >= 20  # it really read the template
    assert findings(report) == []
    assert skips(report) <= SKIPPED


def test_every_skip_in_the_template_gives_its_reason() -> None:
    resources = load()["Resources"]
    assert isinstance(resources, dict)
    listed = [
        (skip["id"], name, " ".join(str(skip.get("comment", "")).split()))
        for name, resource in resources.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert {(check, name) for check, name, _ in listed} == {
        (check, resource.rpartition(".")[2]) for check, resource in SKIPPED
    }
    assert all(len(reason) >= 60 for _, _, reason in listed), listed
