"""The listener's default actions through the real `canary` command, against the moto
server: stickiness cut at a rollback and restored with the stack's duration, actions
before the forward kept, a listener at 0/0 reported as such."""

from __future__ import annotations

import json
from typing import Any

import boto3

from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner


def default_actions(aws_env: AwsEnv) -> list[dict[str, Any]]:
    arn = aws_env.outputs()["ListenerArn"]
    listener = boto3.client("elbv2").describe_listeners(ListenerArns=[arn])["Listeners"][0]
    return list(listener["DefaultActions"])


def forward_of(aws_env: AwsEnv) -> dict[str, Any]:
    return next(a for a in default_actions(aws_env) if a["Type"] == "forward")


def weights_of(aws_env: AwsEnv, forward: dict[str, Any]) -> Weights:
    by_arn = {g["TargetGroupArn"]: g["Weight"] for g in forward["ForwardConfig"]["TargetGroups"]}
    outputs = aws_env.outputs()
    return Weights(
        *(by_arn[outputs[f"TargetGroup{g}Arn"]] for g in ("Stable", "Canary", "Baseline"))
    )


def modify_listener(aws_env: AwsEnv, actions: list[dict[str, Any]]) -> None:
    """A change made outside canary (the console, another tool)."""
    arn = aws_env.outputs()["ListenerArn"]
    boto3.client("elbv2").modify_listener(ListenerArn=arn, DefaultActions=actions)


def test_a_rollback_cuts_stickiness_and_the_next_step_restores_the_stacks_duration(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy", "--stickiness", "600").exit_code == 0
    on = {"Enabled": True, "DurationSeconds": 600}
    assert aws_env.listener()["TargetGroupStickinessConfig"] == on

    assert cli("rollback").exit_code == 0
    # The same ModifyListener that took the canary to 0 turned stickiness off: clients
    # bound to the canary by AWSALBTG would otherwise keep reaching it.
    assert aws_env.live_weights() == Weights(100, 0)
    assert aws_env.listener()["TargetGroupStickinessConfig"] == {"Enabled": False}
    shown = json.loads(cli("status", "-o", "json").stdout)
    assert shown["listener"]["stickiness_seconds"] is None

    # The listener no longer knows the duration; the stack's parameters do.
    assert cli("set-weights", "95", "5").exit_code == 0
    assert aws_env.listener()["TargetGroupStickinessConfig"] == on


def test_authenticate_actions_before_the_forward_survive_set_weights(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0
    forward = {**forward_of(aws_env), "Order": 2}
    oidc = {
        "Type": "authenticate-oidc",
        "Order": 1,
        "AuthenticateOidcConfig": {
            "Issuer": "https://idp.example.com",
            "AuthorizationEndpoint": "https://idp.example.com/authorize",
            "TokenEndpoint": "https://idp.example.com/token",
            "UserInfoEndpoint": "https://idp.example.com/userinfo",
            "ClientId": "canary-app",
            "ClientSecret": "s3cret",
            "OnUnauthenticatedRequest": "authenticate",
        },
    }
    modify_listener(aws_env, [oidc, forward])

    changed = cli("set-weights", "75", "25")
    assert changed.exit_code == 0, changed.stderr
    actions = default_actions(aws_env)
    assert [(a["Type"], a["Order"]) for a in actions] == [
        ("authenticate-oidc", 1),
        ("forward", 2),
    ]
    kept = actions[0]["AuthenticateOidcConfig"]
    assert kept["Issuer"] == "https://idp.example.com" and kept["ClientId"] == "canary-app"
    assert kept["UseExistingClientSecret"] is True  # the secret itself is never re-sent
    assert weights_of(aws_env, actions[1]) == Weights(75, 25)
    assert cli("rollback").exit_code == 0
    assert [a["Type"] for a in default_actions(aws_env)] == ["authenticate-oidc", "forward"]


def test_a_listener_at_zero_zero_is_reported_plainly_and_set_weights_restores_it(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0
    forward = forward_of(aws_env)
    for group in forward["ForwardConfig"]["TargetGroups"]:
        group["Weight"] = 0
    modify_listener(aws_env, [forward])  # ALB accepts it (and moto does)

    shown = cli("status")
    assert shown.exit_code == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "the listener forwards no request: every target group has weight 0" in text
    assert "100%" not in text  # not shown as all-stable
    doc = json.loads(cli("status", "-o", "json").stdout)
    assert doc["listener"] is None
    assert any("every target group has weight 0" in note for note in doc["notes"])

    restored = cli("set-weights", "100", "0")
    assert restored.exit_code == 0, restored.stderr
    assert aws_env.live_weights() == Weights(100, 0)
