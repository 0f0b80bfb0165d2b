"""A manual `canary rollback` in the middle of a rollout on AWS (moto server): it ends the
rollout as `abort` does — recorded with who sent it — whether a controller is ticking it
(it takes the command) or nobody is (the command carries itself out). The rollout's state
is in DynamoDB, so the CLI sees the rollout another process started."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager

import pytest

from canary_deploy.aws.target import AwsTarget
from canary_deploy.backend import SilentProgress
from canary_deploy.config import load_settings
from canary_deploy.rollout import service
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.state import RolloutState
from canary_deploy.rollout.store import Rollout, RolloutStatus
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.test_rollout import steady
from tests.rollout.fakes import FakeMetrics, FakeRouter

HELD = {"min_duration": 600, "max_duration": 1200, "interval": 60, "metrics_lag": 0}


def _start(target: AwsTarget, store: RolloutState) -> tuple[Rollout, Controller]:
    """A rollout at its first step (90/5/5), started by another process."""
    metrics = FakeMetrics(FakeRouter(target.router.get_weights()), rps=200)
    plan = build_plan("aws", HELD)
    target.workload.start_baseline(1, SilentProgress())
    r = start_rollout(store, plan, metrics, canary_image="repo/app:v2")
    controller = Controller(target.router, target.workload, metrics, store, r.id)
    controller.tick()
    return r, controller


@contextmanager
def ticking(controller: Controller) -> Iterator[None]:
    """The controller's loop in the background, as `canary rollout` runs it elsewhere."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set() and not controller.tick().rollout.status.terminal:
            time.sleep(0.1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.mark.parametrize("controller_runs", [True, False], ids=["ticking", "unattended"])
def test_rollback_mid_rollout_ends_it_with_who_sent_it(
    aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch, controller_runs: bool
) -> None:
    assert cli("deploy").exit_code == 0
    settings = load_settings()
    target = AwsTarget.from_settings(settings)
    steady(target, monkeypatch)
    with closing(service.open_store(settings)) as store:
        r, controller = _start(target, store)
        assert aws_env.live_weights() == Weights(90, 5, 5)
        shown = cli("status", "-o", "json")
        assert '"status": "running"' in shown.stdout  # the CLI finds it in DynamoDB
        if controller_runs:
            with ticking(controller):
                result = cli("rollback")
        else:
            store.release(r.id)  # its terminal was closed
            result = cli("rollback")
        assert result.exit_code == 0, result.stderr
        assert aws_env.live_weights() == Weights(100, 0, 0)
        ended = store.get(r.id)
        assert ended.status is RolloutStatus.ROLLED_BACK
        aborts = [e for e in store.events(r.id) if e.kind == "abort"]
        assert len(aborts) == 1 and aborts[0].actor.endswith("(rollback)")
        assert f"rollout #{r.id} ended: rolled back by" in result.stderr
        # Ended for good: a later set-weights is not refused.
        assert cli("set-weights", "95", "5").exit_code == 0
