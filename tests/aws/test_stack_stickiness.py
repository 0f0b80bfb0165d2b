"""A stack update applies the same stickiness rule as every ModifyListener
(canary_deploy/stickiness.py): on only while stable and canary both have weight and the
baseline has none, so CloudFormation never turns stickiness back on behind a rollback."""

from __future__ import annotations

from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner


def sticky(aws_env: AwsEnv) -> object:
    return aws_env.listener()["TargetGroupStickinessConfig"]


def test_a_deploy_after_a_rollback_leaves_stickiness_off(aws_env: AwsEnv, cli: CliRunner) -> None:
    assert cli("deploy", "--stickiness", "600").exit_code == 0
    assert sticky(aws_env) == {"Enabled": True, "DurationSeconds": 600}
    assert cli("rollback").exit_code == 0
    assert sticky(aws_env) == {"Enabled": False}

    # The deploy first records 100/0 in the stack (a weights-only update that makes
    # CloudFormation rewrite the listener), then updates the canary image.
    deployed = cli("deploy", "--stickiness", "600", IMAGE_URI_CANARY="repo/app:v3")
    assert deployed.exit_code == 0, deployed.stderr
    assert aws_env.live_weights() == Weights(100, 0)
    assert sticky(aws_env) == {"Enabled": False}

    assert cli("set-weights", "90", "10").exit_code == 0
    assert sticky(aws_env) == {"Enabled": True, "DurationSeconds": 600}
    again = cli("deploy", "--stickiness", "300", IMAGE_URI_CANARY="repo/app:v4")
    assert again.exit_code == 0, again.stderr
    assert sticky(aws_env) == {"Enabled": True, "DurationSeconds": 300}
