"""`canary adopt` on a team's own setup built on the moto server with plain boto3 calls:
what it checks, then the seed's verbs, deploy and promotion driving it through the CLI,
and `delete` leaving every resource in place. moto starts no ECS task: deployments are
made to complete where a command waits on them (never asserted on)."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest

from canary_deploy.aws.adopted import AdoptedTarget
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.backend import Role
from canary_deploy.config import load_settings
from canary_deploy.weights import Weights
from tests.aws import user_stack
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.test_images_e2e import HOST, push, said
from tests.aws.user_stack import UserStack


@pytest.fixture(autouse=True)
def no_stack_name(aws_env: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """An adoption is driven when no stack name is given for the run (the harness sets
    STACK_NAME for the stack tests)."""
    monkeypatch.delenv("STACK_NAME")


@pytest.fixture
def shop(aws_env: AwsEnv) -> UserStack:
    return user_stack.build()


@pytest.fixture
def adopted(shop: UserStack, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> UserStack:
    """`canary adopt` done (recorded in the test's canary.toml); deployments complete at
    once (moto starts no task)."""
    result = cli(*shop.adopt_args())
    assert result.exit_code == 0, result.stderr
    monkeypatch.setattr(EcsWorkload, "wait_deployments", lambda self, started, progress: None)
    return shop


def recorded(aws_env: AwsEnv) -> dict[str, object]:
    doc = tomllib.loads(Path(aws_env.env["CANARY_CONFIG"]).read_text())
    existing = doc["aws"]["existing"]
    assert isinstance(existing, dict)
    return existing


def test_adopt_finds_the_groups_from_the_services_and_records_them(
    aws_env: AwsEnv, shop: UserStack, cli: CliRunner
) -> None:
    result = cli(*shop.adopt_args())

    assert result.exit_code == 0, result.stderr
    assert "Adopted shop-stable" in result.stdout
    assert "stickiness: 600 s" in result.stdout
    existing = recorded(aws_env)
    assert existing["stable_target_group_arn"] == shop.groups["stable"]
    assert existing["canary_target_group_arn"] == shop.groups["canary"]
    assert existing["baseline_target_group_arn"] == shop.groups["baseline"]
    # Each service's group outside the forward action is where tester routes go.
    assert existing["tester_canary_target_group_arn"] == shop.testers["canary"]
    assert existing["stickiness_seconds"] == 600
    shown = json.loads(cli("config", "--output", "json").stdout)
    assert shown["settings"]["aws"]["existing"]["cluster"] == shop.cluster
    # Adopting reads only: the listener still says what the team set.
    assert shop.weights() == Weights(100, 0)


def test_a_dry_run_writes_nothing(aws_env: AwsEnv, shop: UserStack, cli: CliRunner) -> None:
    result = cli(*shop.adopt_args(), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "Dry run: nothing written." in result.stdout
    assert result.stdout.startswith("Would adopt shop-stable: listener ")
    assert "Adopted" not in result.stdout
    doc = json.loads(cli(*shop.adopt_args(), "--dry-run", "--output", "json").stdout)
    assert doc["recorded_in"] is None
    assert doc["weights"] == {"stable": 100, "canary": 0, "baseline": 0}
    assert doc["adopted"]["canary_target_group_arn"] == shop.groups["canary"]
    assert Path(aws_env.env["CANARY_CONFIG"]).read_text() == ""


def recreate(shop: UserStack, role: Role, groups: list[str], **extra: Any) -> None:
    """The team's `role` service replaced by one registered in `groups`."""
    ecs = boto3.client("ecs")
    ecs.delete_service(cluster=shop.cluster, service=shop.services[role], force=True)
    ecs.create_service(
        cluster=shop.cluster,
        serviceName=shop.services[role],
        taskDefinition=f"{shop.prefix}-shop-{role}",
        desiredCount=1,
        loadBalancers=[
            {"targetGroupArn": arn, "containerName": "app", "containerPort": 8000} for arn in groups
        ],
        **extra,
    )


@pytest.mark.parametrize(
    ("broken", "args", "said"),
    [
        ("nothing", ["--cluster", "nope"], "cluster nope does not exist"),
        (
            "nothing",
            ["--canary-service", "shop-typo"],
            "the canary service shop-typo does not exist",
        ),
        ("canary-unregistered", [], "is registered in none of the forward action's target groups"),
        ("code-deploy", [], "uses the CODE_DEPLOY deployment controller"),
        ("same-group", [], "registered in the same target group"),
    ],
)
def test_adopt_says_what_is_wrong_with_a_setup(
    aws_env: AwsEnv, shop: UserStack, cli: CliRunner, broken: str, args: list[str], said: str
) -> None:
    if broken == "canary-unregistered":  # only in its tester group, outside the forward
        recreate(shop, "canary", [shop.testers["canary"]])
    if broken == "same-group":  # a canary service of its own, in stable's group
        recreate(shop, "canary", [shop.groups["stable"]])
    if broken == "code-deploy":  # blue/green by CodeDeploy: not UpdateService's to drive
        recreate(
            shop, "canary", [shop.groups["canary"]], deploymentController={"type": "CODE_DEPLOY"}
        )
    result = cli(*shop.adopt_args(baseline=False), *args)
    assert result.exit_code == 2
    assert said in result.stderr
    assert "hint:" in result.stderr.lower() or "(" in result.stderr
    assert Path(aws_env.env["CANARY_CONFIG"]).read_text() == ""


def test_adopt_refuses_a_listener_that_does_not_forward(aws_env: AwsEnv, cli: CliRunner) -> None:
    shop = user_stack.build(default_action="fixed-response")
    result = cli(*shop.adopt_args())
    assert result.exit_code == 2
    assert "does not forward to target groups (its actions: fixed-response)" in result.stderr


def test_adopt_refuses_a_forward_with_a_group_it_would_drop(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    shop = user_stack.build(extra_group=True)
    result = cli(*shop.adopt_args())
    assert result.exit_code == 2
    assert f"also forwards to {shop.extra_groups[0]}" in result.stderr
    assert "canary would drop it" in result.stderr


def test_weights_status_and_rollback_drive_the_adopted_listener_keeping_its_stickiness(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    assert cli("set-weights", "90", "10").exit_code == 0
    assert adopted.weights() == Weights(90, 10)
    sticky = adopted.forward()["TargetGroupStickinessConfig"]
    assert sticky == {"Enabled": True, "DurationSeconds": 600}

    status = json.loads(cli("status", "--output", "json").stdout)
    assert status["stack_status"] == "ADOPTED"
    assert status["listener"]["weights"] == {"stable": 90, "canary": 10, "baseline": 0}
    assert status["versions"]["canary"]["service"]["name"] == "shop-canary"
    assert status["versions"]["canary"]["task_definition"]["image"] == "repo/shop:v2"

    assert cli("rollback").exit_code == 0
    assert adopted.weights() == Weights(100, 0)
    # Off while the canary has no weight (an old cookie must not keep clients on it)...
    assert adopted.forward()["TargetGroupStickinessConfig"]["Enabled"] is False
    # ...and the team's 600 s back with the next split.
    assert cli("set-weights", "80", "20").exit_code == 0
    assert adopted.forward()["TargetGroupStickinessConfig"]["DurationSeconds"] == 600
    calls = aws_env.call_log.read_text().split()
    assert not [c for c in calls if c.startswith("cloudformation:")]


def test_an_adopted_listener_rule_is_driven_instead_of_the_default_action(
    aws_env: AwsEnv, shop: UserStack, cli: CliRunner
) -> None:
    assert cli(*shop.adopt_args(rule=True)).exit_code == 0
    assert cli("set-weights", "75", "25").exit_code == 0
    assert shop.weights(rule=True) == Weights(75, 25)
    assert shop.weights() == Weights(100, 0)  # the default action is not canary's
    route = cli("route", "add", "--header", "X-Canary=always", "--to", "canary")
    assert route.exit_code == 2
    assert "adopt the listener (--listener)" in route.stderr


def test_tester_routes_forward_to_the_services_second_group(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    assert cli("route", "add", "--header", "X-Canary=always", "--to", "canary").exit_code == 0
    rules = boto3.client("elbv2").describe_rules(ListenerArn=adopted.listener_arn)["Rules"]
    forwards = [
        g["TargetGroupArn"]
        for r in rules
        if not r["IsDefault"]
        for a in r["Actions"]
        for g in a["ForwardConfig"]["TargetGroups"]
        if r["Conditions"][0]["Field"] == "http-header"
    ]
    assert forwards == [adopted.testers["canary"]]


def test_deploy_registers_a_canary_revision_with_only_the_image_changed(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    before = adopted.task_definition("canary")
    stable_before = adopted.service("stable")["taskDefinition"]

    result = cli("deploy", IMAGE_URI_CANARY="repo/shop:v3", IMAGE_URI_STABLE="")

    assert result.exit_code == 0, result.stderr
    after = adopted.task_definition("canary")
    assert after["family"] == before["family"]
    assert after["revision"] == before["revision"] + 1
    images = {c["name"]: c["image"] for c in after["containerDefinitions"]}
    assert images == {"app": "repo/shop:v3", "envoy": "envoyproxy/envoy:v1.30"}
    app = after["containerDefinitions"][0]
    assert app["environment"] == [{"name": "SHOP_MODE", "value": "canary"}]
    assert (after["cpu"], after["memory"]) == ("512", "1024")
    assert after["executionRoleArn"] == user_stack.EXEC_ROLE
    assert adopted.service("stable")["taskDefinition"] == stable_before
    assert adopted.weights() == Weights(100, 0)  # a deploy keeps the live weights


def test_deploy_refuses_to_change_stable(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    result = cli("deploy", IMAGE_URI_STABLE="repo/shop:v9", IMAGE_URI_CANARY="repo/shop:v3")
    assert result.exit_code == 2
    assert "the stable service runs repo/shop:v1, not repo/shop:v9" in result.stderr
    assert adopted.task_definition("canary")["revision"] == 1


def test_deploy_looks_the_canary_image_up_before_registering_anything(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    missing = f"{HOST}/{aws_env.stack_name}/nowhere:v3"
    result = cli("deploy", IMAGE_URI_CANARY=missing, IMAGE_URI_STABLE="")
    assert result.exit_code == 1, result.stdout
    assert "nowhere" in said(result.stderr)
    assert adopted.task_definition("canary")["revision"] == 1
    arm64_only = push(aws_env, "shop", "v4", "linux/arm64")
    refused = cli("deploy", IMAGE_URI_CANARY=arm64_only, IMAGE_URI_STABLE="")
    assert refused.exit_code == 1 and "exec format error" in said(refused.stderr)
    assert adopted.task_definition("canary")["revision"] == 1


def test_a_dry_run_deploy_lists_the_canary_image_and_registers_nothing(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    result = cli("deploy", "--dry-run", "-o", "json", IMAGE_URI_CANARY="repo/shop:v3",
                 IMAGE_URI_STABLE="")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["parameters"] == [
        {"name": "image_canary", "before": "repo/shop:v2", "after": "repo/shop:v3"}
    ]
    assert any("UpdateService" in note for note in doc["notes"])
    assert "Dry run: shop-stable (aws)" in result.stderr  # the adoption's name, not a stack's
    assert adopted.task_definition("canary")["revision"] == 1
    assert cli("deploy", "--dry-run", IMAGE_URI_STABLE="repo/shop:v9",
               IMAGE_URI_CANARY="repo/shop:v3").exit_code == 2  # fmt: skip
    with_env = cli("deploy", "--env", "A=1", IMAGE_URI_CANARY="repo/shop:v3", IMAGE_URI_STABLE="")
    assert with_env.exit_code == 2 and "changes only the canary's image" in said(with_env.stderr)
    assert adopted.task_definition("canary")["revision"] == 1


def test_delete_refuses_and_every_resource_stays(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    before = adopted.inventory()
    result = cli("delete", "--yes")
    assert result.exit_code == 2
    assert "canary never deletes its listener, target groups or services" in result.stderr
    assert adopted.inventory() == before
    calls = aws_env.call_log.read_text().split()
    assert not [c for c in calls if c.startswith("cloudformation:") or "Delete" in c]

    forgot = cli("adopt", "--forget")
    assert forgot.exit_code == 0
    assert "aws" not in tomllib.loads(Path(aws_env.env["CANARY_CONFIG"]).read_text())
    assert adopted.inventory() == before


def test_the_rollout_state_is_kept_under_the_adoptions_name(
    aws_env: AwsEnv, adopted: UserStack
) -> None:
    settings = load_settings()
    assert settings.state_name == "shop-stable"
    target = AdoptedTarget.from_settings(settings, settings.aws.existing)  # type: ignore[arg-type]
    assert target.status().stack_name == "shop-stable"


def test_adopt_says_a_listener_that_is_not_there_does_not_exist(
    aws_env: AwsEnv, shop: UserStack, cli: CliRunner
) -> None:
    missing = shop.listener_arn[:-4] + "0000"
    result = cli(*shop.adopt_args()[:1], "--listener", missing, *shop.adopt_args()[3:])
    assert result.exit_code == 2
    assert f"listener {missing} does not exist" in result.stderr


def test_a_group_added_to_the_forward_after_adopt_is_never_dropped(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    forward = adopted.forward()
    other = boto3.client("elbv2").create_target_group(
        Name=f"{adopted.prefix}-late", Protocol="HTTP", Port=8000,
        VpcId=boto3.client("elbv2").describe_target_groups(
            TargetGroupArns=[adopted.groups["stable"]])["TargetGroups"][0]["VpcId"],
    )["TargetGroups"][0]["TargetGroupArn"]  # fmt: skip
    forward["TargetGroups"] = [*forward["TargetGroups"], {"TargetGroupArn": other, "Weight": 0}]
    boto3.client("elbv2").modify_listener(
        ListenerArn=adopted.listener_arn,
        DefaultActions=[{"Type": "forward", "ForwardConfig": forward}],
    )

    result = cli("set-weights", "90", "10")

    assert result.exit_code == 1
    assert f"also sends to target group(s) {other} that canary does not manage" in result.stderr
    assert other in [g["TargetGroupArn"] for g in adopted.forward()["TargetGroups"]]
    assert adopted.weights() == Weights(100, 0)


def test_a_listener_deleted_outside_is_named_as_the_teams_with_the_fix(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    boto3.client("elbv2").delete_listener(ListenerArn=adopted.listener_arn)
    result = cli("status")
    assert result.exit_code == 1
    assert "ListenerNotFound (a resource of the adopted setup shop-stable is gone" in result.stderr
    assert "canary never recreates your resources" in result.stderr


def test_logs_reads_the_group_and_streams_the_task_definition_names(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    logs = boto3.client("logs")
    group = f"/shop/{adopted.prefix}"  # the task definitions' awslogs group
    logs.create_log_group(logGroupName=group)
    for stream, line in (("canary/app/t1", "GET /predict 200"), ("stable/app/t2", "stable")):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": int(time.time() * 1000), "message": line}],
        )

    result = cli("logs", "canary", "-n", "5")

    assert result.exit_code == 0, result.stderr
    assert "canary/app/t1 GET /predict 200" in result.stdout
    assert "stable" not in result.stdout.replace("canary/app/t1", "")


def test_adopting_again_after_a_rollback_keeps_the_recorded_stickiness(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    assert cli("rollback").exit_code == 0  # 100/0: canary turned stickiness off
    assert adopted.forward()["TargetGroupStickinessConfig"]["Enabled"] is False
    assert cli(*adopted.adopt_args()).exit_code == 0
    assert recorded(aws_env)["stickiness_seconds"] == 600
    # Said explicitly, it wins: 0 turns it off for good.
    assert cli(*adopted.adopt_args(), "--stickiness", "0").exit_code == 0
    assert "stickiness_seconds" not in recorded(aws_env)
    assert cli("set-weights", "90", "10").exit_code == 0
    assert adopted.forward()["TargetGroupStickinessConfig"]["Enabled"] is False


def test_a_rollout_without_an_adopted_baseline_says_how_to_run_one(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    shop = user_stack.build(baseline=False)  # two groups in the forward
    assert cli(*shop.adopt_args(baseline=False)).exit_code == 0
    result = cli("rollout")
    assert result.exit_code == 2
    assert "no baseline service was adopted" in result.stderr
    assert "--no-baseline" in result.stderr
    assert shop.weights() == Weights(100, 0)


def test_a_stack_name_given_next_to_an_adoption_is_refused_naming_both(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    flag = cli("--stack-name", "rv-h", "set-weights", "95", "5")
    env = cli("set-weights", "95", "5", STACK_NAME="rv-h")

    for result, given in ((flag, "--stack-name"), (env, "STACK_NAME")):
        assert result.exit_code == 2, result.stderr
        text = said(result.stderr)
        assert f"two setups to drive: stack rv-h ({given}) and your own service shop-stable" in text
        assert "canary adopt --forget" in text
    # The team's production listener was not touched.
    assert adopted.weights() == Weights(100, 0)
    assert cli("set-weights", "90", "10").exit_code == 0
    assert adopted.weights() == Weights(90, 10)


def test_forget_with_dry_run_says_what_it_would_remove_and_keeps_it(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    before = Path(aws_env.env["CANARY_CONFIG"]).read_text()

    result = cli("adopt", "--forget", "--dry-run")
    doc = json.loads(cli("adopt", "--forget", "--dry-run", "-o", "json").stdout)

    assert result.exit_code == 0, result.stderr
    assert f"Would remove [aws.existing] from {aws_env.env['CANARY_CONFIG']}" in said(result.stdout)
    assert "Dry run: nothing written." in result.stdout
    assert doc["forgotten"] is False and doc["would_forget"] is True
    assert Path(aws_env.env["CANARY_CONFIG"]).read_text() == before
    assert recorded(aws_env)["name"] == "shop-stable"


@pytest.mark.parametrize("seconds", ["700000", "-5"])
def test_a_stickiness_out_of_albs_range_is_refused_before_any_aws_call(
    aws_env: AwsEnv, shop: UserStack, cli: CliRunner, seconds: str
) -> None:
    result = cli(*shop.adopt_args(), "--stickiness", seconds)

    assert result.exit_code == 2, result.stderr
    assert "Invalid value for '--stickiness'" in said(result.stderr)
    assert "bug" not in result.stderr
    calls = aws_env.call_log.read_text().split() if aws_env.call_log.exists() else []
    assert calls == []
    assert Path(aws_env.env["CANARY_CONFIG"]).read_text() == ""


@pytest.mark.parametrize(
    ("serving", "lacks"), [(("web", 8000), "container web"), (("app", 9000), "port 9000")]
)
def test_a_baseline_stables_task_definition_cannot_serve_is_refused_with_the_fix(
    aws_env: AwsEnv, cli: CliRunner, serving: tuple[str, int], lacks: str
) -> None:
    shop = user_stack.build(baseline_serving=serving)

    result = cli(*shop.adopt_args())

    assert result.exit_code == 2, result.stderr
    text = said(result.stderr)
    assert "a rollout runs the baseline service shop-baseline on stable's task definition" in text
    assert f"which has no {lacks}" in text
    assert "--no-baseline" in text
    assert Path(aws_env.env["CANARY_CONFIG"]).read_text() == ""


@pytest.mark.parametrize("rule", [False, True])
def test_status_gives_the_listeners_own_port_and_says_when_the_split_is_a_rule(
    aws_env: AwsEnv, cli: CliRunner, rule: bool
) -> None:
    shop = user_stack.build(listener_port=8080)
    assert cli(*shop.adopt_args(rule=rule)).exit_code == 0
    dns = boto3.client("elbv2").describe_load_balancers(LoadBalancerArns=[shop.load_balancer_arn])[
        "LoadBalancers"
    ][0]["DNSName"]

    status = json.loads(cli("status", "--output", "json").stdout)

    assert status["listener"]["url"] == f"http://{dns}:8080/"
    said_rule = [n for n in status["notes"] if "only requests matching" in n]
    if rule:
        assert said_rule == [
            "the split is a listener rule's forward: only requests matching path-pattern "
            "/api/* take it; the listener's default action is not canary's"
        ]
    else:
        assert said_rule == []


def test_ctrl_c_during_an_adopted_deploy_says_the_ecs_deployment_carries_on(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: EcsWorkload, started: object, progress: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(EcsWorkload, "wait_deployments", interrupted)

    result = cli("deploy", IMAGE_URI_CANARY="repo/shop:v3", IMAGE_URI_STABLE="")

    assert result.exit_code == 130
    text = said(result.stderr)
    assert "the ECS deployment of shop-canary carries on" in text
    assert "canary status" in text
    assert adopted.task_definition("canary")["revision"] == 2


@pytest.mark.parametrize(
    ("where", "said_"),
    [
        (["--listener", "shop-listener"], "--listener takes the listener's ARN, not shop-listener"),
        (["--listener", "RULE"], "is a listener rule's ARN"),
        (["--listener", "LISTENER", "--rule", "RULE"], "give --listener or --rule, not both"),
        (["--listener", "OTHER-REGION"], "is in region eu-west-1, and canary works in us-east-1"),
        (["--listener", "LISTENER", "--canary-service", "shop-stable"], "the same service"),
    ],
)
def test_adopt_says_what_is_wrong_with_the_names_before_any_aws_call(
    aws_env: AwsEnv, shop: UserStack, cli: CliRunner, where: list[str], said_: str
) -> None:
    real = {
        "LISTENER": shop.listener_arn,
        "RULE": str(shop.rule_arn),
        "OTHER-REGION": shop.listener_arn.replace(":us-east-1:", ":eu-west-1:"),
    }
    args = [real.get(a, a) for a in where]
    services = ["--cluster", shop.cluster, "--stable-service", "shop-stable"]
    if "--canary-service" not in args:
        services += ["--canary-service", "shop-canary"]

    result = cli("adopt", *args, *services)

    assert result.exit_code == 2, result.stderr
    assert said_ in said(result.stderr)
    assert "hint" in result.stderr.lower()
    calls = aws_env.call_log.read_text().split() if aws_env.call_log.exists() else []
    assert calls == []


def test_deploy_says_the_stacks_production_settings_do_not_apply_to_an_adopted_setup(
    aws_env: AwsEnv, adopted: UserStack, cli: CliRunner
) -> None:
    plain = cli("deploy", "--dry-run", IMAGE_URI_CANARY="repo/shop:v3", IMAGE_URI_STABLE="")
    result = cli("deploy", "--dry-run", IMAGE_URI_CANARY="repo/shop:v3", IMAGE_URI_STABLE="",
                 DELETION_PROTECTION="true", AUTOSCALING_METRIC="cpu")  # fmt: skip

    assert plain.exit_code == 0 and "do not apply" not in plain.stderr
    assert result.exit_code == 0, result.stderr
    assert (
        "warning: DELETION_PROTECTION, AUTOSCALING_METRIC: settings of canary's stack "
        "template, which do not apply to your own service shop-stable"
    ) in said(result.stderr)


def test_adopting_with_a_stack_name_set_says_it_must_be_unset_to_drive_the_adoption(
    aws_env: AwsEnv, shop: UserStack, cli: CliRunner
) -> None:
    result = cli(*shop.adopt_args(), STACK_NAME="rv-h")

    assert result.exit_code == 0, result.stderr
    assert (
        "STACK_NAME is set: commands given a stack name next to [aws.existing] are refused"
    ) in said(result.stderr)
    assert "leave STACK_NAME unset to drive shop-stable" in said(result.stderr)
