"""What a rollout costs in AWS API calls (issue 11 item 10): the controller on the AWS
target, its rollout state in DynamoDB and CloudWatch metrics, all against the moto server,
every call counted from the IAM call log (CANARY_AWS_CALL_LOG)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from canary_deploy.aws.state_open import open_state
from canary_deploy.aws.target import AwsTarget
from canary_deploy.config import load_settings
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.start import start_rollout
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.test_rollout import steady
from tests.rollout.fakes import Clock

TICKS = 120  # ten minutes at the AWS plan's pace


def calls(log: Path) -> Counter[str]:
    return Counter(log.read_text().split()) if log.exists() else Counter()


def test_a_tick_reads_the_listener_once_and_target_health_only_before_a_raise(
    aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("deploy").exit_code == 0
    assert cli("set-weights", "100", "0").exit_code == 0  # step 1 raises the canary's share
    target = AwsTarget.from_settings(load_settings())
    steady(target, monkeypatch)
    plan = build_plan("aws", {"baseline": False})  # 1-min batches, 3-min lag and re-read
    assert plan.tick_s == 5.0
    store = open_state(region=None, profile=None, stack_name=aws_env.stack_name)
    clock = Clock(1_700_000_000.0)
    try:
        r = start_rollout(store, plan, target.metrics, canary_image="repo/app:v2", clock=clock)
        controller = Controller(
            target.router, target.workload, target.metrics, store, r.id, clock=clock
        )
        before = calls(aws_env.call_log)
        for _ in range(TICKS):
            clock.advance(plan.tick_s)
            controller.tick()
        made = calls(aws_env.call_log) - before
        batches = len([e for e in store.events(r.id) if e.kind in ("batch", "decision")])
    finally:
        store.close()
    per_hour = {action: round(n * 3600 / (TICKS * plan.tick_s)) for action, n in made.items()}
    print(f"\nAWS API calls in {TICKS} ticks ({batches} batches), and per hour: ")
    for action, n in sorted(made.items()):
        print(f"  {action}: {n} ({per_hour[action]}/h)")
    # One a tick, and one more by the ModifyListener that put step 1's weights on (it
    # sends the listener's other actions back).
    assert made["elasticloadbalancing:DescribeListeners"] == TICKS + 1
    assert made["elasticloadbalancing:ModifyListener"] == 1
    # Target health (one group: no baseline here) and the stable count, before that raise
    # only (the second DescribeServices is this test's stand-in for moto's health checks).
    assert made["elasticloadbalancing:DescribeTargetHealth"] == 1
    assert made["ecs:DescribeServices"] == 2
    # One read of the new minute and one of the three before it (none before the first).
    assert made["cloudwatch:GetMetricData"] == 2 * batches - 1
    # The state: read, commands, save: three calls a tick, and one more for the raise.
    state = sum(n for action, n in made.items() if action.startswith("dynamodb:"))
    assert state <= 3 * TICKS + 2
