"""A rollout on an adopted setup (built with plain boto3 on the moto server), with fake
metrics (moto computes no CloudWatch statistics) and steady services (moto starts no task):
promotion registers a stable revision with the judged image, a rollback only moves the
weights."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest

from canary_deploy.aws.adopted import AdoptedTarget
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.backend import SilentProgress
from canary_deploy.config import load_settings
from canary_deploy.rollout import service
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.store import RolloutStatus, RolloutStore
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.test_rollout import steady
from tests.aws.user_stack import UserStack, build
from tests.rollout.fakes import Clock, FakeMetrics, FakeRouter


@pytest.fixture(autouse=True)
def no_stack_name(aws_env: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """An adoption is driven when no stack name is given for the run."""
    monkeypatch.delenv("STACK_NAME")


@pytest.fixture
def shop(aws_env: AwsEnv, cli: CliRunner) -> UserStack:
    shop = build()
    assert cli(*shop.adopt_args()).exit_code == 0
    return shop


def run_rollout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary_error_rate: float
) -> tuple[RolloutStatus, AdoptedTarget]:
    settings = load_settings()
    assert settings.aws.existing is not None
    target = AdoptedTarget.from_settings(settings, settings.aws.existing)
    steady(target, monkeypatch)  # type: ignore[arg-type]
    clock = Clock()
    mirror = FakeRouter(target.router.get_weights())
    metrics = FakeMetrics(mirror, rps=200, canary_error_rate=canary_error_rate)
    store = RolloutStore(tmp_path / "rollouts.db", settings.state_name)
    plan = build_plan("aws", {"min_duration": 60, "max_duration": 120, "min_requests": 10,
                              "interval": 60, "metrics_lag": 0})  # fmt: skip
    target.workload.start_baseline(1, SilentProgress())
    image = target.workload.canary_image()
    assert image == "repo/shop:v2"  # moto's tasks report no digest: the task definition's
    r = start_rollout(store, plan, metrics, canary_image=image, clock=clock)
    c = Controller(target.router, target.workload, metrics, store, r.id, clock=clock)
    for _ in range(200):
        for second in range(int(clock.t), int(clock.t) + 5):
            metrics.record(second)
        clock.advance(5)
        mirror.weights = target.router.get_weights()
        if c.tick().rollout.status.terminal:
            break
    return store.get(r.id).status, target


def test_promotion_gives_stable_a_revision_of_its_own_task_definition_with_the_judged_image(
    aws_env: AwsEnv, shop: UserStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = shop.task_definition("stable")

    status, _ = run_rollout(tmp_path, monkeypatch, canary_error_rate=0.01)

    assert status is RolloutStatus.PROMOTED
    after = shop.task_definition("stable")
    assert (after["family"], after["revision"]) == (before["family"], before["revision"] + 1)
    images = {c["name"]: c["image"] for c in after["containerDefinitions"]}
    assert images == {"app": "repo/shop:v2", "envoy": "envoyproxy/envoy:v1.30"}
    # Stable's own settings, not the canary's: only the image moved.
    assert after["containerDefinitions"][0]["environment"] == [
        {"name": "SHOP_MODE", "value": "stable"}
    ]
    assert shop.weights() == Weights(100, 0)
    assert shop.service("baseline")["desiredCount"] == 0
    assert shop.forward()["TargetGroupStickinessConfig"]["Enabled"] is False  # 100/0


def test_a_rollback_moves_only_the_weights(
    aws_env: AwsEnv, shop: UserStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stable_before = shop.service("stable")["taskDefinition"]

    status, _ = run_rollout(tmp_path, monkeypatch, canary_error_rate=0.3)

    assert status is RolloutStatus.ROLLED_BACK
    assert shop.weights() == Weights(100, 0)
    assert shop.service("stable")["taskDefinition"] == stable_before
    assert shop.service("baseline")["desiredCount"] == 0
    calls = aws_env.call_log.read_text().split()
    assert not [c for c in calls if c.startswith("cloudformation:")]


def test_promote_full_through_the_cli_promotes_the_adopted_service(
    aws_env: AwsEnv, shop: UserStack, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto never completes a deployment: stable is steady at once, here only.
    monkeypatch.setattr(EcsWorkload, "wait_steady", lambda self, role, progress: None)
    monkeypatch.setattr(EcsWorkload, "wait_deployments", lambda self, started, progress: None)
    settings = load_settings()
    plan = build_plan("aws", {"baseline": False})
    with closing(service.open_store(settings)) as store:
        mirror = FakeRouter(Weights(100, 0))
        r = start_rollout(store, plan, FakeMetrics(mirror, rps=10), canary_image="repo/shop:v2")
        store.release(r.id)  # its controller stopped: the command acts itself
    # Kept under the adoption's name, where `status` (and every later command) finds it.
    status = json.loads(cli("status", "-o", "json").stdout)
    assert (status["stack_name"], status["rollout"]["status"]) == ("shop-stable", "running")

    result = cli("promote", "--full")

    assert result.exit_code == 0, result.stderr
    images = {c["name"]: c["image"] for c in shop.task_definition("stable")["containerDefinitions"]}
    assert images["app"] == "repo/shop:v2"
    assert shop.weights() == Weights(100, 0)
    history = cli("history").stdout
    assert "promoted: stable now runs repo/shop:v2" in history
