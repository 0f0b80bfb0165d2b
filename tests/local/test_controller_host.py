"""The local daemon runs the rollout controller: a rollout nobody's terminal runs still
ticks, a killed controller is started again, an ended rollout gets none."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from contextlib import closing

from canary_deploy.config import LocalSettings, Settings
from canary_deploy.local.controller_host import CHECK_EVERY_S
from canary_deploy.rollout import service
from canary_deploy.rollout.handover import save_settings
from canary_deploy.rollout.plan import RolloutPlan, Step
from canary_deploy.rollout.start import begin
from canary_deploy.rollout.store import Command, RolloutStore
from canary_deploy.targets import open_target
from tests.local.conftest import LocalStack, pid_gone, wait_for


def _settings(stack: LocalStack) -> Settings:
    return Settings(
        target="local",
        local=LocalSettings(state_dir=stack.paths.state_dir, listen=f"127.0.0.1:{stack.port}"),
    )


def _owner(store: RolloutStore, rollout_id: int) -> int | None:
    r = store.get(rollout_id)
    alive = store.controller_alive(r, now=time.time())
    return r.owner_pid if alive else None


def test_the_daemon_runs_a_rollout_nobody_runs_and_restarts_a_killed_controller(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--stable-weight", "100", "--canary-weight", "0")
    settings = _settings(stack)
    target = open_target(settings)
    with closing(service.open_store(settings)) as store:
        plan = RolloutPlan((Step(10, 300, 600),), interval_s=1.0, baseline=False)
        rollout, resumed = begin(settings, target, store, plan)
        assert not resumed
        store.release(rollout.id)  # the CLI that started it is gone
        save_settings(settings)

        first = wait_for(lambda: _owner(store, rollout.id), 20, "the daemon's controller")
        assert first != os.getpid()
        # It ticks: the step's weights are applied by a process nobody's terminal runs.
        wait_for(lambda: stack.status()["listener"]["weights"]["canary"] == 10, 20, "10%")

        os.kill(first, signal.SIGKILL)
        wait_for(lambda: pid_gone(first), 10, "the controller to die")
        second = wait_for(
            lambda: (o := _owner(store, rollout.id)) not in (None, first) and o, 20, "a new one"
        )
        assert second != first

        # Steering reaches the daemon's controller; after the end none is started again.
        store.send(rollout.id, Command.ABORT, actor="test")
        wait_for(lambda: store.get(rollout.id).status.terminal, 20, "the abort to apply")
        assert stack.status()["listener"]["weights"]["canary"] == 0
        wait_for(lambda: pid_gone(second), 10, "the controller to exit")
        # The daemon checks every CHECK_EVERY_S: through three checks, none is started.
        deadline = time.monotonic() + 3 * CHECK_EVERY_S
        while time.monotonic() < deadline:
            assert _owner(store, rollout.id) is None
            time.sleep(0.1)
    log = (stack.paths.state_dir / "controller.log").read_text()
    assert "running rollout" in log
