"""Alarm-based rollback on AWS against the moto server's CloudWatch alarms: a watched alarm
set to ALARM rolls the rollout back at the next tick, with the alarm's reason in the
history; a rollout naming an alarm that does not exist fails before anything starts."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import boto3
import pytest

from canary_deploy.aws.target import AwsTarget
from canary_deploy.backend import SilentProgress
from canary_deploy.config import load_settings
from canary_deploy.rollout import service
from canary_deploy.rollout.alarms import alarm_source, require_alarms
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.store import RolloutStatus
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.test_rollout import steady
from tests.rollout.fakes import FakeMetrics, FakeRouter

HELD = {"min_duration": 600, "max_duration": 1200, "interval": 60, "metrics_lag": 0}
REASON = "Threshold Crossed: 1 datapoint [2.5] was greater than the threshold (1.0)."


def put_alarm(name: str) -> None:
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/ApplicationELB",
        MetricName="TargetResponseTime",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )


def test_an_alarm_in_alarm_rolls_the_rollout_back_with_its_reason(
    aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("deploy").exit_code == 0
    settings = load_settings()
    target = AwsTarget.from_settings(settings)
    steady(target, monkeypatch)
    name = f"{aws_env.stack_name}-p99"
    put_alarm(name)
    put_alarm(f"{aws_env.stack_name}-other")
    plan = build_plan("aws", {**HELD, "alarms": [name, f"{aws_env.stack_name}-other"]})
    alarms = alarm_source(target)
    require_alarms(alarms, plan.alarms)  # as `canary rollout` does before it starts
    metrics = FakeMetrics(FakeRouter(target.router.get_weights()), rps=200)
    with closing(service.open_store(settings)) as store:
        target.workload.start_baseline(1, SilentProgress())
        r = start_rollout(store, plan, metrics, canary_image="repo/app:v2")
        controller = Controller(target.router, target.workload, metrics, store, r.id, alarms=alarms)
        assert controller.tick().rollout.status is RolloutStatus.RUNNING
        assert aws_env.live_weights() == Weights(90, 5, 5)
        boto3.client("cloudwatch").set_alarm_state(
            AlarmName=name, StateValue="ALARM", StateReason=REASON
        )
        result = controller.tick()
        assert result.rollout.status is RolloutStatus.ROLLED_BACK
        assert result.rollout.reason == f"CloudWatch alarm {name} is in ALARM: {REASON}"
        events = [e for e in store.events(r.id) if e.kind == "rollback"]
        assert [e.message for e in events] == [f"CloudWatch alarm {name} is in ALARM: {REASON}"]
    assert aws_env.live_weights() == Weights(100, 0)
    history = cli("history")
    assert history.exit_code == 0, history.stderr
    assert name in history.stdout and "Threshold Crossed" in history.stdout


def test_a_rollout_naming_a_missing_alarm_fails_before_it_starts(
    aws_env: AwsEnv, cli: CliRunner, tmp_path: Path
) -> None:
    assert cli("deploy").exit_code == 0
    put_alarm(f"{aws_env.stack_name}-real")
    config = tmp_path / "canary.toml"
    config.write_text(
        f'[rollout]\nalarms = ["{aws_env.stack_name}-real", "{aws_env.stack_name}-typo"]\n'
    )
    result = cli("rollout", CANARY_CONFIG=str(config))
    assert result.exit_code == 2
    assert f"no CloudWatch alarm named {aws_env.stack_name}-typo" in result.stderr
    assert "Traceback" not in result.stderr
    assert aws_env.live_weights() == Weights(95, 5)  # nothing started
