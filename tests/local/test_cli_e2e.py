"""The seed's verbs end to end on the local target, through the CLI, on 127.0.0.1.

The tests in this module share one deployed stack and run in file order."""

from __future__ import annotations

import os
import signal
import time
from contextlib import closing
from typing import Any

import pytest

from canary_deploy.backend import SilentProgress
from canary_deploy.config import load_settings
from canary_deploy.local.processes import stack_processes
from canary_deploy.local.store import StateStore
from canary_deploy.local.target import LocalTarget
from tests.local.conftest import LocalStack, pid_gone, wait_for

pytestmark = pytest.mark.integration


def recorded(stack: LocalStack, since: float) -> int:
    """Requests in the metric buckets the daemon persisted since `since`."""
    with closing(StateStore(stack.paths.state_dir)) as store:
        return sum(int(b["requests"]) for b in store.load_buckets(since))


def by_version(load: dict[str, Any]) -> dict[str, int]:
    return {v: s["requests"] for v, s in load["versions"].items()}


def test_deploy_runs_both_services_behind_the_listener(deployed: LocalStack) -> None:
    status = deployed.status()
    assert status["target"] == "local" and status["stack_status"] == "RUNNING"
    assert status["listener"]["url"] == f"{deployed.url}/"
    assert status["listener"]["weights"] == {"stable": 95, "canary": 5, "baseline": 0}
    stable, canary = status["versions"]["stable"], status["versions"]["canary"]
    assert stable["task_definition"]["image"] == "builtin:v1"
    assert canary["task_definition"]["image"] == "builtin:v2"
    assert (stable["service"]["running"], stable["service"]["desired"]) == (2, 2)
    assert (canary["service"]["running"], canary["service"]["desired"]) == (1, 1)
    assert stable["target_group"]["healthy"] == 2 and canary["target_group"]["healthy"] == 1
    # The admin socket can change live traffic: owner only.
    assert os.stat(deployed.paths.socket).st_mode & 0o777 == 0o600


def test_status_traffic_matches_the_load_that_was_sent(deployed: LocalStack) -> None:
    deployed.ok("set-weights", "50", "50")
    load = deployed.load(200)
    assert by_version(load) == {"v1": 100, "v2": 100}  # smooth weighted round robin
    assert load["total"]["errors"] == 0
    traffic = {v: s["traffic"] for v, s in deployed.status()["versions"].items()}
    assert traffic["stable"]["requests"] == 100 and traffic["canary"]["requests"] == 100
    assert traffic["stable"]["errors"] == 0 and traffic["canary"]["error_rate"] == 0
    for t in traffic.values():
        assert 0 < t["p50_s"] <= t["p95_s"] <= t["p99_s"]


def test_load_prints_which_version_answered_each_request(deployed: LocalStack) -> None:
    out = deployed.ok("load", "-n", "20", "--path", "/whoami").stdout
    lines = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    answered = [line for line in lines if len(line) > 2 and line[1] == "200"]
    assert len(answered) == 20
    assert {line[2] for line in answered} == {"v1", "v2"}


def test_load_at_a_rate_for_a_duration(deployed: LocalStack) -> None:
    load = deployed.ok("load", "--rate", "40", "--duration", "1", "-o", "json").json()
    assert load["total"]["requests"] == 40  # open loop: one request scheduled every 25 ms
    assert load["total"]["errors"] == 0


def test_set_weights_changes_the_split(deployed: LocalStack) -> None:
    status = deployed.ok("set-weights", "0", "100", "-o", "json").json()
    assert status["listener"]["weights"] == {"stable": 0, "canary": 100, "baseline": 0}
    assert by_version(deployed.load(30)) == {"v2": 30}
    deployed.ok("rollback")
    assert by_version(deployed.load(30)) == {"v1": 30}


def test_bad_weights_are_rejected_and_change_nothing(deployed: LocalStack) -> None:
    before = deployed.admin("GET", "/weights")
    for args, message in [
        (("60", "50"), "must sum to 100, got 60 + 50 = 110"),
        (("abc", "5"), "stable weight must be an integer"),
        (("101", "0"), "between 0 and 100"),
    ]:
        result = deployed.run("set-weights", *args)
        assert (result.exit_code, message in result.stderr) == (2, True), result.stderr
    assert deployed.admin("GET", "/weights") == before


def test_bad_canary_commands_are_rejected_and_change_nothing(deployed: LocalStack) -> None:
    pids = sorted(t["pid"] for t in deployed.tasks())
    for image, message in [
        ("python -m http.server 9999", "does not contain $PORT"),
        ("python -c 'import sys; sys.exit(4)' $PORT", "exited at once with code 4"),
    ]:
        result = deployed.run("deploy", "--image-canary", image)
        assert result.exit_code == 2, result.stderr
        assert message in " ".join(result.stderr.split())
    assert deployed.admin("GET", "/spec")["image_canary"] == "builtin:v2"
    assert sorted(t["pid"] for t in deployed.tasks()) == pids


def test_killed_task_is_replaced(deployed: LocalStack) -> None:
    victim = next(t for t in deployed.tasks() if t["version"] == "stable")
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced() -> bool:
        stable = [t for t in deployed.tasks() if t["version"] == "stable"]
        return (
            len(stable) == 2
            and victim["pid"] not in {t["pid"] for t in stable}
            and all(t["health"] == "healthy" for t in stable)
        )

    wait_for(replaced, 30, "the killed task to be replaced")
    service = deployed.status()["versions"]["stable"]["service"]
    assert (service["running"], service["deployment_state"]) == (2, "COMPLETED")
    events = [e["message"] for e in deployed.admin("GET", "/events")]
    assert any(victim["task_id"] in m and "exited with code -9" in m for m in events)


def test_kill_9_of_the_data_plane_leaves_no_process_and_a_restart_restores_weights(
    deployed: LocalStack,
) -> None:
    deployed.ok("set-weights", "75", "25")
    since = time.time() - 1
    served = deployed.load(40)["total"]["requests"]
    wait_for(lambda: recorded(deployed, since) >= served, 15, "metrics to reach the disk")
    task_pids = [t["pid"] for t in deployed.tasks()]
    # The process that holds the listener and the tasks (a daemon's death costs nothing).
    plane = deployed.paths.dataplane_pid()
    assert plane is not None and len(task_pids) >= 3
    os.kill(plane, signal.SIGKILL)

    wait_for(lambda: all(pid_gone(p) for p in task_pids), 10, "task processes to die")
    wait_for(lambda: not stack_processes(deployed.paths.marker), 10, "the daemon to die too")
    stopped = deployed.status()
    assert stopped["stack_status"] == "STOPPED"

    # Like `docker compose up -d` after a crash; it comes back where clients point,
    # even though this deploy would pick a free port for a new stack.
    deployed.ok("deploy", CANARY_LISTEN="127.0.0.1:0")
    status = deployed.status()
    assert status["listener"]["weights"] == {"stable": 75, "canary": 25, "baseline": 0}
    assert status["listener"]["url"] == f"{deployed.url}/"
    assert status["versions"]["stable"]["service"]["running"] == 2
    counts = deployed.admin("GET", f"/counts?start={since}&end={time.time() + 1}")
    assert sum(c["requests"] for c in counts.values()) == served, "traffic history restored"
    assert set(by_version(deployed.load(8))) == {"v1", "v2"}  # serving again


def test_promote_rolls_stable_onto_the_canary_image(deployed: LocalStack) -> None:
    settings = load_settings(env=deployed.env, config_file=deployed.root / "none.toml")
    target = LocalTarget.from_settings(settings)
    old_stable = {t["pid"] for t in deployed.tasks() if t["version"] == "stable"}
    weights = target.router.get_weights()
    target.workload.promote("builtin:v2", SilentProgress())
    stable = [t for t in deployed.tasks() if t["version"] == "stable"]
    assert {t["image"] for t in stable} == {"builtin:v2"}
    assert len(stable) == 2 and not old_stable & {t["pid"] for t in stable}
    assert target.router.get_weights() == weights, "promotion alone does not move traffic"
    assert by_version(deployed.load(10)) == {"v2": 10}  # both groups now serve v2
    target.workload.scale_canary(2)
    wait_for(lambda: target.workload.describe_services()["canary"].running == 2, 30, "scale out")


def test_delete_stops_everything_and_keeps_history(deployed: LocalStack) -> None:
    task_pids = [t["pid"] for t in deployed.tasks()]
    deployed.ok("delete", "--yes")
    assert all(pid_gone(p) for p in task_pids)
    assert deployed.paths.daemon_pid() is None
    missing = deployed.run("status")
    assert missing.exit_code == 1 and "no local stack" in missing.stderr
    assert (deployed.paths.state_dir / "state.db").exists(), "history stays unless --purge"
    deployed.ok("delete", "--yes", "--purge")
    assert not deployed.paths.state_dir.exists()
