"""The baseline group end to end against the moto server: three groups on one listener,
the baseline's tasks started and stopped with ECS calls, stack updates that keep them.

moto starts no tasks, so the wait for the deployments to complete is the one thing faked;
every assertion is on what we sent (listener weights, desired counts, stack parameters)."""

from __future__ import annotations

import json

import pytest

from canary_deploy.aws.target import AwsTarget
from canary_deploy.config import load_settings
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.stubs import RecordingProgress
from tests.aws.test_rollout import ModifyListenerCounter


@pytest.fixture
def target(aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> AwsTarget:
    """A stack deployed at 95/5 through the CLI; deployments 'complete' at once."""
    deployed = cli("deploy")
    assert deployed.exit_code == 0, deployed.stderr
    target = AwsTarget.from_settings(load_settings())
    monkeypatch.setattr(target.ecs, "wait_deployments", lambda started, progress: None)
    return target


def services(target: AwsTarget) -> dict[str, dict[str, object]]:
    """moto's view of the three services, by group: desired count and task definition."""
    out = target.outputs()
    found = target.ecs._ecs.describe_services(  # type: ignore[attr-defined]
        cluster=out.cluster_name, services=[out.service_name(g) for g in out.groups]
    )["services"]
    by_name = {s["serviceName"]: s for s in found}
    return {
        g: {
            "desired": by_name[out.service_name(g)]["desiredCount"],
            "task_definition": by_name[out.service_name(g)]["taskDefinition"],
        }
        for g in out.groups
    }


def test_three_groups_on_one_listener_each_change_one_call(
    aws_env: AwsEnv, target: AwsTarget, cli: CliRunner
) -> None:
    counter = ModifyListenerCounter(target)
    assert aws_env.live_weights() == Weights(95, 5)  # the baseline group is there, at 0

    target.router.set_weights(Weights(90, 5, 5))
    assert counter.calls == [[90, 5, 5]]
    assert aws_env.live_weights() == Weights(90, 5, 5)
    assert target.router.get_weights() == Weights(90, 5, 5)
    assert target.router.verify_weights(Weights(90, 5, 5))
    shown = cli("status", "--output", "json")
    assert shown.exit_code == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["listener"]["weights"] == {"stable": 90, "canary": 5, "baseline": 5}
    assert "baseline" in doc["versions"]  # it has weight: it has a row

    target.router.set_weights(Weights(100, 0, 0))
    assert counter.calls == [[90, 5, 5], [100, 0, 0]]
    assert aws_env.live_weights() == Weights(100, 0)
    # ModifyListener replaced the whole action: stickiness was sent again, unchanged.
    assert aws_env.listener()["TargetGroupStickinessConfig"] == {"Enabled": False}
    doc = json.loads(cli("status", "--output", "json").stdout)
    assert "baseline" not in doc["versions"]  # no tasks, no weight: no row


def test_start_baseline_runs_stables_task_definition_and_restarts_the_canary(
    target: AwsTarget,
) -> None:
    before = services(target)
    assert before["baseline"]["desired"] == 0  # outside rollouts
    progress = RecordingProgress()
    target.workload.start_baseline(2, progress)
    after = services(target)
    assert after["baseline"]["desired"] == 2
    assert after["baseline"]["task_definition"] == before["stable"]["task_definition"]
    assert after["canary"] == before["canary"]  # same count and image, fresh tasks
    assert any("started together" in line for line in progress.lines)

    target.workload.stop_baseline()
    assert services(target)["baseline"]["desired"] == 0


def test_a_deploy_during_a_rollout_keeps_the_baselines_tasks_and_weight(
    aws_env: AwsEnv, target: AwsTarget, cli: CliRunner
) -> None:
    target.workload.start_baseline(2, RecordingProgress())
    target.router.set_weights(Weights(90, 5, 5))

    updated = cli("deploy", IMAGE_URI_CANARY="repo/app:v3")
    assert updated.exit_code == 0, updated.stderr
    assert "Keeping the live listener weights 90/5/5" in updated.stderr
    assert "Keeping the baseline's 2 live task(s)" in updated.stderr
    parameters = aws_env.stack_parameters()
    assert parameters["ImageURICanary"] == "repo/app:v3"
    assert (parameters["StableWeight"], parameters["CanaryWeight"]) == ("90", "5")
    assert (parameters["BaselineWeight"], parameters["DesiredCountBaseline"]) == ("5", "2")
    assert aws_env.live_weights() == Weights(90, 5, 5)
    assert services(target)["baseline"]["desired"] == 2

    # The rollout ends: one listener call, then the baseline's tasks stop. The next deploy
    # follows: 0 tasks, weight 0.
    target.router.set_weights(Weights(100, 0, 0))
    target.workload.stop_baseline()
    again = cli("deploy", IMAGE_URI_CANARY="repo/app:v3", DESIRED_COUNT_CANARY="2")
    assert again.exit_code == 0, again.stderr
    parameters = aws_env.stack_parameters()
    assert (parameters["BaselineWeight"], parameters["DesiredCountBaseline"]) == ("0", "0")
    assert services(target)["baseline"]["desired"] == 0


def test_slow_start_is_a_stack_parameter_off_by_default(aws_env: AwsEnv, cli: CliRunner) -> None:
    assert cli("deploy").exit_code == 0
    assert aws_env.stack_parameters()["SlowStartSeconds"] == "0"
    updated = cli("deploy", "--slow-start", "120")
    assert updated.exit_code == 0, updated.stderr
    assert aws_env.stack_parameters()["SlowStartSeconds"] == "120"
