"""The baseline group end to end on the real local stack: started with fresh canary tasks,
served at 90/5/5, stopped; `status` shows it only while it is in use."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from canary_deploy.config import load_settings
from canary_deploy.errors import OperationFailed
from canary_deploy.local.target import LocalTarget
from canary_deploy.weights import Weights
from tests.local.conftest import LocalStack, pid_gone, wait_for

pytestmark = pytest.mark.integration


class RecordingProgress:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def update(self, message: str) -> None:
        self.lines.append(message)

    def log(self, message: str) -> None:
        self.lines.append(message)


def test_baseline_starts_with_fresh_canary_tasks_serves_its_share_and_stops(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy")
    status = stack.status()
    assert "baseline" not in status["versions"], "no baseline row outside a rollout"
    assert status["listener"]["weights"] == {"stable": 95, "canary": 5, "baseline": 0}
    assert "tg-baseline" not in stack.ok("status").stdout

    target = LocalTarget.from_settings(
        load_settings(env=stack.env, config_file=stack.root / "none.toml")
    )
    old_canary = {t["pid"] for t in stack.tasks() if t["version"] == "canary"}
    stable_pids = {t["pid"] for t in stack.tasks() if t["version"] == "stable"}
    progress = RecordingProgress()
    since_event = max(e["id"] for e in stack.admin("GET", "/events"))
    target.workload.start_baseline(1, progress)

    # On return both groups' new tasks are healthy; the canary's are fresh processes.
    fresh = [t for t in stack.tasks() if t["pid"] not in old_canary | stable_pids]
    assert sorted(t["version"] for t in fresh) == ["baseline", "canary"]
    assert all(t["state"] == "RUNNING" and t["health"] == "healthy" for t in fresh)
    assert {t["image"] for t in fresh if t["version"] == "baseline"} == {"builtin:v1"}
    assert {t["pid"] for t in stack.tasks() if t["version"] == "stable"} == stable_pids
    wait_for(lambda: all(pid_gone(p) for p in old_canary), 15, "old canary tasks to stop")
    # Started at the same moment: in one reconcile step of the daemon.
    starts = [
        e["t"]
        for e in stack.admin("GET", f"/events?since={since_event}")
        if e["kind"] == "task" and e["message"].startswith("started")
    ]
    assert len(starts) == 2 and max(starts) - min(starts) < 0.2
    assert any("baseline" in line for line in progress.lines)

    target.router.set_weights(Weights(90, 5, 5))
    assert target.router.verify_weights(Weights(90, 5, 5))
    assert target.router.get_weights() == Weights(90, 5, 5)
    since = time.time()
    load = stack.load(200)
    assert load["total"]["errors"] == 0
    assert {v: s["requests"] for v, s in load["versions"].items()} == {"v1": 190, "v2": 10}
    counts = stack.admin("GET", f"/counts?start={since - 1}&end={time.time() + 1}")
    assert [counts[g]["requests"] for g in ("stable", "canary", "baseline")] == [180, 10, 10]

    status = stack.status()
    assert status["listener"]["weights"] == {"stable": 90, "canary": 5, "baseline": 5}
    baseline = status["versions"]["baseline"]
    assert baseline["task_definition"]["image"] == "builtin:v1"
    assert (baseline["service"]["running"], baseline["service"]["desired"]) == (1, 1)
    assert baseline["target_group"]["healthy"] == 1
    assert baseline["traffic"]["requests"] == 10
    text = stack.ok("status").stdout
    assert "app-baseline: 1/1 running" in text and "tg-baseline" in text and "90/5/5" in text

    with pytest.raises(OperationFailed, match="baseline still has 5%"):
        target.workload.stop_baseline()
    # The seed's two-number interface means baseline 0.
    stack.ok("set-weights", "95", "5")
    assert target.router.get_weights() == Weights(95, 5, 0)
    baseline_pids = [t["pid"] for t in stack.tasks() if t["version"] == "baseline"]
    target.workload.stop_baseline()
    wait_for(lambda: all(pid_gone(p) for p in baseline_pids), 15, "baseline tasks to stop")
    wait_for(lambda: "baseline" not in stack.status()["versions"], 15, "baseline row to go")
    assert "tg-baseline" not in stack.ok("status").stdout
    assert stack.status()["versions"]["canary"]["service"]["running"] == 1


def test_a_restarted_daemon_restores_the_baseline_and_its_weight(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", SLOW_START_SECONDS="30")
    target = LocalTarget.from_settings(
        load_settings(env=stack.env, config_file=stack.root / "none.toml")
    )
    target.workload.start_baseline(1, RecordingProgress())
    target.router.set_weights(Weights(90, 5, 5))
    assert stack.admin("GET", "/status")["slow_start_seconds"] == 30
    pid = stack.paths.daemon_pid()
    assert pid is not None
    os.kill(pid, 9)
    wait_for(lambda: pid_gone(pid), 10, "daemon to die")
    # Any admin call restarts it from the stored spec and weights.
    assert target.router.get_weights() == Weights(90, 5, 5)
    wait_for(
        lambda: target.workload.describe_services()["baseline"].running == 1, 30, "baseline back"
    )
    assert stack.admin("GET", "/status")["slow_start_seconds"] == 30
