"""A stack update that fails and rolls back never leaves the listener on stale weights.

CloudFormation's rollback gives every resource the update changed the stack's previous
values; for the listener, those are the weight parameters of the last successful update.
moto never fails an update: the emulator (aws/emulator.py) fails and rolls back one whose
image URI contains `fails-to-start`, applying the previous template and parameters again,
as CloudFormation does when the ECS circuit breaker stops a deployment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canary_deploy.aws.emulator import FAILING_IMAGE_MARK
from canary_deploy.aws.target import AwsTarget
from canary_deploy.config import load_settings
from canary_deploy.rollout.store import RolloutStatus
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.test_rollout import ModifyListenerCounter, rollout, steady

BROKEN_CANARY = f"repo/app:v3-{FAILING_IMAGE_MARK}"


def weight_parameters(aws_env: AwsEnv) -> Weights:
    parameters = aws_env.stack_parameters()
    return Weights(
        int(parameters["StableWeight"]),
        int(parameters["CanaryWeight"]),
        int(parameters["BaselineWeight"]),
    )


def test_a_failed_deploy_after_set_weights_keeps_the_live_weights(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0
    assert cli("set-weights", "60", "40").exit_code == 0

    failed = cli("deploy", IMAGE_URI_CANARY=BROKEN_CANARY)

    assert failed.exit_code == 1, failed.stderr
    assert "UPDATE_ROLLBACK_COMPLETE" in failed.stderr
    assert "Circuit Breaker" in failed.stderr  # the failing resource's event was streamed
    assert aws_env.live_weights() == Weights(60, 40)
    # The stack learnt the live weights before the real update: a rollback restores them.
    assert weight_parameters(aws_env) == Weights(60, 40)
    assert aws_env.stack_parameters()["ImageURICanary"] == "repo/app:v2"
    shown = json.loads(cli("status", "--output", "json").stdout)
    assert shown["stack_status"] == "UPDATE_ROLLBACK_COMPLETE"
    assert shown["listener"]["drift"] is False


def test_a_failed_deploy_after_a_promotion_keeps_all_traffic_on_the_new_stable(
    aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert cli("deploy").exit_code == 0
    target = AwsTarget.from_settings(load_settings())
    steady(target, monkeypatch)
    store, rollout_id, _ = rollout(tmp_path, target, canary_error_rate=0.01)
    assert store.get(rollout_id).status is RolloutStatus.PROMOTED
    assert aws_env.live_weights() == Weights(100, 0)
    # The promotion recorded 100/0 together with the new stable image, never 0/100.
    parameters = aws_env.stack_parameters()
    assert parameters["ImageURIStable"] == "repo/app:v2"
    assert weight_parameters(aws_env) == Weights(100, 0)

    counter = ModifyListenerCounter(target)
    failed = cli("deploy", IMAGE_URI_STABLE="repo/app:v2", IMAGE_URI_CANARY=BROKEN_CANARY)

    assert failed.exit_code == 1, failed.stderr
    assert "UPDATE_ROLLBACK_COMPLETE" in failed.stderr
    assert "100/0" in failed.stderr  # says which weights the listener keeps
    assert aws_env.live_weights() == Weights(100, 0)
    assert weight_parameters(aws_env) == Weights(100, 0)
    assert counter.calls == []  # the in-process target is not the CLI's: nothing else moved
