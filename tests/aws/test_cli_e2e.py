"""The seed's walk-through end to end through the real `canary` command, against moto."""

from __future__ import annotations

import json

import boto3

from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv


def test_deploy_set_weights_rollback_update_status_delete(aws_env: AwsEnv) -> None:
    deployed = aws_env.run("deploy", "--stickiness", "600")
    assert deployed.exit_code == 0, deployed.stderr
    assert "using the default VPC" in deployed.stderr
    assert "CREATE_COMPLETE" in deployed.stderr  # stack events streamed as progress
    assert "95%" in deployed.stdout and "5%" in deployed.stdout
    listener = aws_env.listener()
    assert aws_env.live_weights() == Weights(95, 5)
    assert listener["TargetGroupStickinessConfig"] == {"Enabled": True, "DurationSeconds": 600}

    changed = aws_env.run("set-weights", "75", "25")
    assert changed.exit_code == 0, changed.stderr
    assert aws_env.live_weights() == Weights(75, 25)
    # ModifyListener replaces the whole action: stickiness must have been sent again.
    assert aws_env.listener()["TargetGroupStickinessConfig"]["Enabled"] is True  # type: ignore[index]
    assert "drift" in changed.stdout  # the stack still says 95/5

    rolled_back = aws_env.run("rollback")
    assert rolled_back.exit_code == 0, rolled_back.stderr
    assert aws_env.live_weights() == Weights(100, 0)

    aws_env.run("set-weights", "60", "40")
    updated = aws_env.run("deploy", "--stickiness", "600", IMAGE_URI_CANARY="repo/app:v3")
    assert updated.exit_code == 0, updated.stderr
    assert "Keeping the live listener weights 60/40" in updated.stderr
    assert aws_env.live_weights() == Weights(60, 40)

    shown = aws_env.run("status", "--output", "json")
    assert shown.exit_code == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["target"] == "aws"
    assert doc["stack_name"] == aws_env.stack_name
    assert doc["stack_status"] == "UPDATE_COMPLETE"
    assert doc["listener"]["weights"] == {"stable": 60, "canary": 40, "baseline": 0}
    assert doc["listener"]["stickiness_seconds"] == 600
    # The update wrote the live weights into the stack: no drift left.
    assert doc["listener"]["configured_weights"] == {"stable": 60, "canary": 40, "baseline": 0}
    assert doc["listener"]["drift"] is False
    assert doc["listener"]["url"].startswith("http://") and ".elb." in doc["listener"]["url"]
    # moto does not roll the service onto the new task definition, so check what we sent.
    parameters = aws_env.stack_parameters()
    assert parameters["ImageURICanary"] == "repo/app:v3"
    assert (parameters["StableWeight"], parameters["CanaryWeight"]) == ("60", "40")
    assert (parameters["BaselineWeight"], parameters["DesiredCountBaseline"]) == ("0", "0")
    assert set(doc["versions"]) == {"stable", "canary"}  # no baseline row outside rollouts
    assert doc["versions"]["stable"]["task_definition"]["image"] == "repo/app:v1"
    assert doc["versions"]["stable"]["service"]["desired"] == 2
    assert doc["versions"]["canary"]["service"]["desired"] == 1

    deleted = aws_env.run("delete", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert not aws_env.stack_exists()
    gone = aws_env.run("status")
    assert gone.exit_code == 1
    assert "does not exist" in gone.stderr


def test_first_deploy_uses_seed_weights_and_the_given_network(aws_env: AwsEnv) -> None:
    ec2 = boto3.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    subnets = [
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ]
    ][:2]
    result = aws_env.run(
        "deploy",
        "--output",
        "json",
        STABLE_WEIGHT="80",
        CANARY_WEIGHT="20",
        VPC_ID=vpc["VpcId"],
        SUBNET_IDS=",".join(subnets),
    )
    assert result.exit_code == 0, result.stderr
    assert "default VPC" not in result.stderr
    assert json.loads(result.stdout)["listener"]["weights"] == {
        "stable": 80,
        "canary": 20,
        "baseline": 0,
    }
    assert aws_env.live_weights() == Weights(80, 20)
    assert aws_env.stack_parameters()["VpcId"] == vpc["VpcId"]
    assert aws_env.listener()["TargetGroupStickinessConfig"] == {"Enabled": False}
