"""A rollout on the AWS target against the moto server, with a fake metrics source (moto
computes no CloudWatch statistics) and steady ECS services (moto starts no tasks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canary_deploy.aws.target import AwsTarget
from canary_deploy.backend import ServiceStatus, Version
from canary_deploy.config import load_settings
from canary_deploy.rollout.controller import Controller, start_rollout
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.store import RolloutStatus, RolloutStore
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.rollout.fakes import Clock, FakeMetrics, FakeRouter


class ModifyListenerCounter:
    def __init__(self, target: AwsTarget) -> None:
        self.calls: list[list[int]] = []
        target.alb._elbv2.meta.events.register(  # type: ignore[attr-defined]
            "provide-client-params.elastic-load-balancing-v2.ModifyListener", self._count
        )

    def _count(self, params: dict[str, Any], **_: Any) -> None:
        groups = params["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
        self.calls.append([g["Weight"] for g in groups])


def steady(target: AwsTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """What moto cannot do: services whose deployments complete."""

    def describe() -> dict[Version, ServiceStatus]:
        return {
            "stable": ServiceStatus("app-stable", 2, 0, 2, "COMPLETED"),
            "canary": ServiceStatus("app-canary", 1, 0, 1, "COMPLETED"),
        }

    monkeypatch.setattr(target.ecs, "describe_services", describe)
    monkeypatch.setattr(target.ecs, "scale_canary", lambda n: None)


def rollout(
    tmp_path: Path, target: AwsTarget, canary_error_rate: float
) -> tuple[RolloutStore, int, Clock]:
    clock = Clock()
    # The metrics follow the live listener weights through a mirror of the real router.
    mirror = FakeRouter(target.router.get_weights())
    metrics = FakeMetrics(mirror, rps=200, canary_error_rate=canary_error_rate)
    store = RolloutStore(tmp_path / "aws-rollouts.db", target._settings.stack_name)
    plan = build_plan("aws", {"min_duration": 60, "max_duration": 120, "min_requests": 10,
                              "interval": 60, "metrics_lag": 0})  # fmt: skip
    r = start_rollout(store, plan, metrics, canary_image="repo/app:v2", clock=clock)
    c = Controller(target.router, target.workload, metrics, store, r.id, clock=clock)
    for _ in range(200):
        metrics.record(int(clock.t))
        clock.advance(5)
        mirror.weights = target.router.get_weights()
        if c.tick().rollout.status.terminal:
            break
    return store, r.id, clock


@pytest.fixture
def deployed(
    aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> tuple[AwsTarget, ModifyListenerCounter]:
    """A stack deployed at 95/5 through the CLI, and a counter of ModifyListener calls."""
    assert cli("deploy").exit_code == 0
    target = AwsTarget.from_settings(load_settings())
    steady(target, monkeypatch)
    return target, ModifyListenerCounter(target)


def test_steps_go_through_the_listener_in_order_and_promotion_updates_the_stack(
    aws_env: AwsEnv, deployed: tuple[AwsTarget, ModifyListenerCounter], tmp_path: Path
) -> None:
    target, counter = deployed
    store, rollout_id, _ = rollout(tmp_path, target, canary_error_rate=0.01)
    assert store.get(rollout_id).status is RolloutStatus.PROMOTED
    assert counter.calls == [[75, 25], [50, 50], [0, 100], [100, 0]]  # 95/5 was deployed
    assert aws_env.stack_parameters()["ImageURIStable"] == "repo/app:v2"
    assert aws_env.live_weights() == Weights(100, 0)
    # The promotion's stack update kept the live weights (0/100 then), not the stack's 95/5.
    assert aws_env.stack_parameters()["CanaryWeight"] in ("100", "0")


def test_rollback_is_one_modify_listener_call(
    aws_env: AwsEnv, deployed: tuple[AwsTarget, ModifyListenerCounter], tmp_path: Path
) -> None:
    target, counter = deployed
    store, rollout_id, _ = rollout(tmp_path, target, canary_error_rate=0.2)
    assert store.get(rollout_id).status is RolloutStatus.ROLLED_BACK
    assert counter.calls == [[100, 0]]  # already at step 1's 95/5: only the rollback
    assert aws_env.live_weights() == Weights(100, 0)
    assert aws_env.stack_parameters()["ImageURIStable"] == "repo/app:v1"
