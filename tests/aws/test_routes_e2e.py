"""Tester routes as listener rules through the real `canary` command, against the moto
server: created with an http-header condition and a forward to one tester target group,
at a free priority, tagged as ours; `set-weights` leaves them; `delete` removes them; rules
that are not ours are never touched. Tester groups hold the same tasks as the main groups,
are in no weighted action, and the judge never reads them."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError

from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner

# The stack's own rule that keeps the tester groups in use (ECS needs that); not a route.
TESTER_GROUPS_RULE = "50000"
ROLES = ("Stable", "Canary", "Baseline")


def rules(aws_env: AwsEnv) -> list[dict[str, Any]]:
    """The listener's rules but its default one and the stack's tester-groups rule."""
    arn = aws_env.outputs()["ListenerArn"]
    found = boto3.client("elbv2").describe_rules(ListenerArn=arn)["Rules"]
    return [r for r in found if not r.get("IsDefault") and r["Priority"] != TESTER_GROUPS_RULE]


def arns_of_tester_groups(aws_env: AwsEnv) -> set[str]:
    outputs = aws_env.outputs()
    return {outputs[f"TesterTargetGroup{role}Arn"] for role in ROLES}


def weighted_arns(aws_env: AwsEnv) -> set[str]:
    groups = aws_env.listener()["TargetGroups"]
    assert isinstance(groups, list)
    return {g["TargetGroupArn"] for g in groups}


def listed(cli: CliRunner) -> list[dict[str, Any]]:
    result = cli("route", "list", "-o", "json")
    assert result.exit_code == 0, result
    doc: list[dict[str, Any]] = json.loads(result.stdout)
    return doc


def test_a_route_is_a_listener_rule_that_set_weights_leaves_and_delete_removes(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0
    outputs = aws_env.outputs()
    elbv2 = boto3.client("elbv2")
    # Someone else's rule at priority 2: its priority is avoided and it is never touched.
    theirs = elbv2.create_rule(
        ListenerArn=outputs["ListenerArn"],
        Priority=2,
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/admin/*"]}}],
        Actions=[{"Type": "forward", "TargetGroupArn": outputs["TargetGroupStableArn"]}],
    )["Rules"][0]["RuleArn"]

    added = cli("route", "add", "--header", "X-Canary=always", "--to", "canary")
    assert added.exit_code == 0, added
    assert "Added tester route #1 --header X-Canary=always -> canary" in added.stdout
    assert cli("route", "add", "--cookie", "tester=yes", "--to", "baseline").exit_code == 0

    by_priority = {r["Priority"]: r for r in rules(aws_env)}
    assert sorted(by_priority) == ["1", "2", "3"]  # ours after each other, 2 skipped
    header = by_priority["1"]
    assert header["Conditions"] == [
        {
            "Field": "http-header",
            "HttpHeaderConfig": {"HttpHeaderName": "X-Canary", "Values": ["always"]},
        }
    ]
    forward = header["Actions"][0]["ForwardConfig"]["TargetGroups"]
    assert [g["TargetGroupArn"] for g in forward] == [outputs["TesterTargetGroupCanaryArn"]]
    forward = by_priority["3"]["Actions"][0]["ForwardConfig"]["TargetGroups"]
    assert [g["TargetGroupArn"] for g in forward] == [outputs["TesterTargetGroupBaselineArn"]]
    cookie = by_priority["3"]["Conditions"][0]["HttpHeaderConfig"]
    assert cookie == {
        "HttpHeaderName": "Cookie",
        "Values": ["tester=yes", "tester=yes;*", "*; tester=yes", "*; tester=yes;*"],
    }
    tags = elbv2.describe_tags(ResourceArns=[header["RuleArn"]])["TagDescriptions"][0]["Tags"]
    assert {"Key": "canary-deploy:route", "Value": "header"} in tags

    assert listed(cli) == [
        {"priority": 1, "kind": "header", "name": "X-Canary", "value": "always", "to": "canary"},
        {"priority": 3, "kind": "cookie", "name": "tester", "value": "yes", "to": "baseline"},
    ]

    # set-weights and rollback change the default action only, never to a tester group.
    before = rules(aws_env)
    assert cli("set-weights", "50", "50").exit_code == 0
    assert aws_env.live_weights() == Weights(50, 50)
    assert not weighted_arns(aws_env) & arns_of_tester_groups(aws_env)
    assert cli("rollback").exit_code == 0
    assert not weighted_arns(aws_env) & arns_of_tester_groups(aws_env)
    assert rules(aws_env) == before

    deleted = cli("route", "delete", "--header", "x-canary=ALWAYS")
    assert deleted.exit_code == 0 and "Deleted tester route #1" in deleted.stdout
    assert [r["priority"] for r in listed(cli)] == [3]
    assert sorted(r["Priority"] for r in rules(aws_env)) == ["2", "3"]

    assert cli("delete", "--yes").exit_code == 0
    # Ours are removed before the stack goes (moto keeps the listener after a stack
    # delete, see DESIGN.md section 4; on AWS it goes with its remaining rules).
    try:
        found = elbv2.describe_rules(ListenerArn=outputs["ListenerArn"])["Rules"]
        remaining = [r["RuleArn"] for r in found if not r.get("IsDefault")]
    except ClientError:
        remaining = []  # the listener is gone
    assert remaining in ([theirs], [])


def test_route_mistakes_on_aws_get_clear_errors(aws_env: AwsEnv, cli: CliRunner) -> None:
    assert cli("deploy").exit_code == 0
    assert cli("route", "add", "--header", "X-Canary=always", "--to", "canary").exit_code == 0
    duplicate = cli("route", "add", "--header", "X-CANARY=Always", "--to", "canary")
    assert duplicate.exit_code == 2
    assert "already exists (priority 1)" in duplicate.stderr
    missing = cli("route", "delete", "5")
    assert missing.exit_code == 2 and "no tester route '5'" in missing.stderr
    assert len(rules(aws_env)) == 1
