"""A rollout on the AWS target against the moto server, with a fake metrics source (moto
computes no CloudWatch statistics) and steady ECS services (moto starts no tasks)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from canary_deploy.aws.live import LIVE_PARAMETERS
from canary_deploy.aws.target import AwsTarget
from canary_deploy.backend import Role, ServiceStatus, SilentProgress
from canary_deploy.config import load_settings
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.start import start_rollout
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


class UpdateServiceRecorder:
    """The UpdateService requests sent to moto: (group, desired count, forceNewDeployment)."""

    def __init__(self, target: AwsTarget) -> None:
        self.calls: list[tuple[Role, int | None, bool]] = []
        out = target.outputs()
        self._groups = {out.service_name(g): g for g in out.groups}
        target.ecs._ecs.meta.events.register(  # type: ignore[attr-defined]
            "provide-client-params.ecs.UpdateService", self._record
        )

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        group = self._groups[params["service"]]
        self.calls.append(
            (group, params.get("desiredCount"), params.get("forceNewDeployment", False))
        )


def steady(target: AwsTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """What moto cannot do: tasks that start, deployments that complete and targets that
    pass their health checks. The desired counts are moto's (what we sent); every task of
    them runs and is a healthy target."""
    real = target.ecs.describe_services

    def describe() -> dict[Role, ServiceStatus]:
        return {
            v: replace(s, running=s.desired, pending=0, deployment_state="COMPLETED")
            for v, s in real().items()
        }

    monkeypatch.setattr(target.ecs, "describe_services", describe)
    monkeypatch.setattr(target.ecs, "wait_deployments", lambda started, progress: None)
    real_health = target.health.healthy

    def healthy(roles: Collection[Role]) -> dict[Role, int]:
        real_health(roles)  # the DescribeTargetHealth calls (moto registers no target)
        services = describe()
        return {v: services[v].desired if v in services else 0 for v in roles}

    monkeypatch.setattr(target.health, "healthy", healthy)


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
    assert plan.baseline
    # As `canary rollout` does before its first step: baseline and canary tasks start together.
    target.workload.start_baseline(1, SilentProgress())
    r = start_rollout(store, plan, metrics, canary_image="repo/app:v2", clock=clock)
    c = Controller(target.router, target.workload, metrics, store, r.id, clock=clock)
    for _ in range(200):
        for second in range(int(clock.t), int(clock.t) + 5):
            metrics.record(second)  # the split of every second the clock passes
        clock.advance(5)
        mirror.weights = target.router.get_weights()
        if c.tick().rollout.status.terminal:
            break
    return store, r.id, clock


class UpdateStackRecorder:
    """The UpdateStack requests sent to moto: (weights-only?, the values given). A
    weights-only update keeps the stack's template and gives live values only (a promotion
    keeps the template too, but gives a new stable image)."""

    def __init__(self, target: AwsTarget) -> None:
        self.calls: list[tuple[bool, dict[str, str]]] = []
        self.templates: list[str | None] = []
        target.stack._cf.meta.events.register(  # type: ignore[attr-defined]
            "provide-client-params.cloudformation.UpdateStack", self._record
        )

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        given = {p["ParameterKey"]: p["ParameterValue"] for p in params["Parameters"]
                 if "ParameterValue" in p}  # fmt: skip
        weights_only = params.get("UsePreviousTemplate", False) and set(given) <= set(
            LIVE_PARAMETERS
        )
        self.calls.append((weights_only, given))
        self.templates.append(params.get("TemplateBody"))  # None: the stack's own


@dataclass
class Deployed:
    target: AwsTarget
    listener: ModifyListenerCounter
    services: UpdateServiceRecorder
    stack_updates: UpdateStackRecorder


@pytest.fixture
def deployed(aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Deployed:
    """A stack deployed at 95/5 through the CLI, and recorders of ModifyListener,
    UpdateService and UpdateStack calls."""
    assert cli("deploy").exit_code == 0
    target = AwsTarget.from_settings(load_settings())
    steady(target, monkeypatch)
    return Deployed(
        target,
        ModifyListenerCounter(target),
        UpdateServiceRecorder(target),
        UpdateStackRecorder(target),
    )


# start_baseline(1): the baseline's task and fresh canary tasks, in two calls back to back.
STARTED_TOGETHER: list[tuple[Role, int | None, bool]] = [
    ("baseline", 1, True),
    ("canary", None, True),
]


def baseline_desired_count(target: AwsTarget) -> int:
    """The baseline service's desired count as moto holds it (what we last sent)."""
    out = target.outputs()
    found = target.ecs._ecs.describe_services(  # type: ignore[attr-defined]
        cluster=out.cluster_name, services=[out.service_name("baseline")]
    )["services"]
    return int(found[0]["desiredCount"])


def test_steps_go_through_the_listener_in_order_and_promotion_updates_the_stack(
    aws_env: AwsEnv, deployed: Deployed, tmp_path: Path
) -> None:
    target = deployed.target
    store, rollout_id, _ = rollout(tmp_path, target, canary_error_rate=0.01)
    assert store.get(rollout_id).status is RolloutStatus.PROMOTED
    # 95/5 was deployed; the baseline gets the canary's share up to 50%, then soak steps;
    # the promotion ends the rollout: canary and baseline to 0 at once, once stable runs the
    # new image (the controller's own 100/0 call after it finds that split in place).
    assert deployed.listener.calls == [
        [90, 5, 5], [50, 25, 25], [0, 50, 50], [0, 100, 0], [100, 0, 0], [100, 0, 0]
    ]  # fmt: skip
    assert aws_env.live_weights() == Weights(100, 0)
    # The stack first recorded the live 0/100 (weights only), so the promotion's update kept
    # the live weights, not the stack's 95/5, and the baseline's live task count: 0, because
    # a baseline at weight 0 (the 100% step) is stopped before the promotion, so the update
    # does not roll its tasks for nothing (tests/aws/test_promotion.py covers a live count
    # passed while the baseline serves). The canary, which serves 100% on the 2 tasks the
    # rollout sized it to, keeps them (the stack says 1): an update that touched its service
    # must not leave 1 task with all the traffic. Then it recorded 100/0 with the new
    # stable image.
    assert deployed.stack_updates.calls == [
        (True, {"StableWeight": "0", "CanaryWeight": "100"}),
        (False, {"ImageURIStable": "repo/app:v2", "StableWeight": "0", "CanaryWeight": "100",
                 "BaselineWeight": "0", "DesiredCountBaseline": "0", "DesiredCountCanary": "2"}),
        (True, {"StableWeight": "100", "CanaryWeight": "0"}),
    ]  # fmt: skip
    parameters = aws_env.stack_parameters()
    assert parameters["ImageURIStable"] == "repo/app:v2"
    assert (parameters["StableWeight"], parameters["CanaryWeight"]) == ("100", "0")
    assert (parameters["BaselineWeight"], parameters["DesiredCountBaseline"]) == ("0", "0")
    # Baseline and canary started together; the canary sized for 100% (2 stable tasks: 2
    # canary tasks; nothing more for 5-50% with a baseline at the same share) before that
    # step's weights; the baseline stopped after the last call, the canary left idle.
    assert deployed.services.calls == [
        *STARTED_TOGETHER, ("canary", 2, False), ("baseline", 0, False), ("canary", 0, False)
    ]  # fmt: skip
    assert baseline_desired_count(target) == 0


def test_rollback_is_one_modify_listener_call_then_the_baseline_stops(
    aws_env: AwsEnv, deployed: Deployed, tmp_path: Path
) -> None:
    target = deployed.target
    store, rollout_id, _ = rollout(tmp_path, target, canary_error_rate=0.2)
    assert store.get(rollout_id).status is RolloutStatus.ROLLED_BACK
    # Step 1 (90/5/5), then the rollback: one call takes canary and baseline to 0.
    assert deployed.listener.calls == [[90, 5, 5], [100, 0, 0]]
    assert aws_env.live_weights() == Weights(100, 0)
    assert aws_env.stack_parameters()["ImageURIStable"] == "repo/app:v1"
    # The baseline stopped, the canary scaled to post_rollback_canary_count (0).
    assert deployed.services.calls == [
        *STARTED_TOGETHER, ("baseline", 0, False), ("canary", 0, False)
    ]  # fmt: skip
    assert baseline_desired_count(target) == 0
