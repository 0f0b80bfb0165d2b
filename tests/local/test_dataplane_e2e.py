"""The data plane outlives the control plane (issue 12 item 9): `kill -9` of the daemon
costs no request - the listener and the tasks live in the data-plane process, the daemon
comes back on its own and takes the stack over - and `delete` still leaves no process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from canary_deploy.local.processes import stack_processes
from canary_deploy.local.store import StateStore
from tests.local.conftest import LocalStack, pid_gone, wait_for

pytestmark = pytest.mark.integration


@dataclass
class SteadyLoad:
    """A client thread: requests one after another, alternating a kept-alive connection
    and a new connection per request; every exception or non-200 answer is a failure."""

    port: int
    answered: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)  # every HTTP answer, by status
    versions: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SteadyLoad:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=60)

    def wait_answered(self, more: int, *, stop_on_failure: bool = True) -> None:
        target = self.answered + more
        wait_for(
            lambda: self.answered >= target or (stop_on_failure and self.failures),
            60,
            f"{more} answers",
        )

    def _run(self) -> None:
        kept = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        fresh = False
        while not self._stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30) if fresh else kept
            try:
                conn.request("GET", "/whoami")
                response = conn.getresponse()
                body = response.read().decode()
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                if response.status != 200:
                    self.failures.append(f"{response.status} {body[:80]}")
                else:
                    version = json.loads(body)["version"]
                    self.versions[version] = self.versions.get(version, 0) + 1
                    self.answered += 1
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{'new' if fresh else 'kept-alive'}: {exc!r}")
                if not fresh:
                    kept.close()
                    kept = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            finally:
                if fresh:
                    conn.close()
            fresh = not fresh
            self._stop.wait(0.005)
        kept.close()


def persisted(stack: LocalStack, since: float, until: float) -> int:
    """Requests in the metric buckets saved to the state store."""
    with closing(StateStore(stack.paths.state_dir)) as store:
        return sum(int(b["requests"]) for b in store.load_buckets(since) if b["t"] < until)


def task_pids(stack: LocalStack) -> set[int]:
    return {t["pid"] for t in stack.tasks()}


def test_kill_9_of_the_daemon_costs_no_request_and_the_stack_stays_controllable(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--stable-weight", "50", "--canary-weight", "50")
    before = task_pids(stack)
    daemon = stack.paths.daemon_pid()
    assert daemon is not None
    # The data plane's socket changes live traffic too: owner only.
    assert os.stat(stack.paths.dataplane_socket).st_mode & 0o777 == 0o600

    since = time.time() - 1
    with SteadyLoad(stack.port) as load:
        load.wait_answered(50)
        os.kill(daemon, signal.SIGKILL)
        wait_for(lambda: pid_gone(daemon), 10, "the daemon to die")
        # Nobody does anything: the daemon comes back on its own.
        back = wait_for(
            lambda: (pid := stack.paths.daemon_pid()) not in (None, daemon) and pid,
            30,
            "a new daemon",
        )
        assert back != daemon
        load.wait_answered(200)
    assert load.failures == [], load.failures[:5]
    assert set(load.versions) == {"v1", "v2"}
    # Every request is counted once: live in the data plane, and on disk (no gap while no
    # daemon persisted).
    until = time.time() + 1
    counts = stack.admin("GET", f"/counts?start={since}&end={until}")
    assert sum(c["requests"] for c in counts.values()) == load.answered
    wait_for(lambda: persisted(stack, since, until) == load.answered, 15, "metrics on disk")

    # It took the stack over: the same tasks, nothing restarted, and it is controllable.
    assert task_pids(stack) == before
    status = stack.status()
    assert status["stack_status"] == "RUNNING"
    assert status["listener"]["weights"] == {"stable": 50, "canary": 50, "baseline": 0}
    stack.ok("set-weights", "0", "100")
    assert set(stack.load(10)["versions"]) == {"v2"}
    stack.ok("rollback")
    assert set(stack.load(10)["versions"]) == {"v1"}
    events = [e["message"] for e in stack.admin("GET", "/events")]
    assert any("took over" in m for m in events), events[-10:]


def test_delete_after_a_daemon_crash_leaves_no_process(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy")
    daemon = stack.paths.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    wait_for(lambda: stack.paths.daemon_pid() not in (None, daemon), 30, "a new daemon")
    stack.ok("delete", "--yes")
    assert stack_processes(stack.paths.marker) == []
    assert not Path(stack.paths.socket).exists()
    result = stack.run("status")
    assert result.exit_code == 1 and "no local stack" in result.stderr


def test_a_rollout_goes_on_across_a_daemon_crash_and_an_a_a_canary_is_not_rolled_back(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--image-canary", "builtin:v1", "--stable-weight", "100",
             "--canary-weight", "0")  # fmt: skip
    judged = subprocess.Popen(
        [sys.executable, "-m", "canary_deploy", "load", "--rate", "300", "-d", "100000",
         "-c", "8", "-o", "json"],
        cwd=stack.root, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with SteadyLoad(stack.port) as load:
            # Judged against a baseline (like for like: an A/A against stable's older,
            # busier tasks is not one on a busy machine).
            stack.ok("rollout", "--detach", "--steps", "10,50", "--min-duration", "4s",
                     "--max-duration", "12s", "--interval", "1s")  # fmt: skip
            wait_for(lambda: stack.status()["listener"]["weights"]["canary"] == 10, 30, "step 1")
            killed_controller = wait_for(
                lambda: rollout(stack)["controller"]["pid"], 30, "the controller"
            )
            daemon = stack.paths.daemon_pid()
            assert daemon is not None
            os.kill(daemon, signal.SIGKILL)
            wait_for(lambda: stack.paths.daemon_pid() not in (None, daemon), 30, "a new daemon")
            # A new controller takes the rollout on, and it ends on the judge's word.
            wait_for(
                lambda: rollout(stack)["controller"]["pid"] not in (None, killed_controller),
                30,
                "a new controller",
            )
            ended = wait_for(lambda: ended_or_paused(stack), 120, "the rollout to end")
        assert load.failures == [], load.failures[:5]
    finally:
        judged.kill()
        judged.wait()
    assert ended["status"] != "rolled_back", ended
    history = stack.ok("history", "-o", "json").json()
    assert not [e for e in history if e["kind"] in ("rollback", "rolled_back")], history


def test_a_restarted_stack_opens_its_listener_only_when_every_group_can_answer(
    new_stack: Callable[[], LocalStack],
) -> None:
    """After the data plane itself died, the restarted listener must not answer 503 for a
    group whose tasks are not back yet: the judge would read those as that group's
    errors. Connections are refused until then (the outage the death began)."""
    stack = new_stack()
    stack.ok("deploy", "--stable-weight", "50", "--canary-weight", "50")
    plane = stack.paths.dataplane_pid() or stack.paths.daemon_pid()
    assert plane is not None
    os.kill(plane, signal.SIGKILL)
    wait_for(lambda: not stack_processes(stack.paths.marker), 15, "the stack's processes to die")
    since = time.time()
    with SteadyLoad(stack.port) as load:
        stack.ok("set-weights", "50", "50")  # restarts the stack
        load.wait_answered(100, stop_on_failure=False)
    assert set(load.statuses) == {200}, load.statuses
    counts = stack.admin("GET", f"/counts?start={since - 1}&end={time.time() + 1}")
    assert counts["stable"]["errors"] == counts["canary"]["errors"] == 0, counts
    assert counts["stable"]["requests"] > 0 and counts["canary"]["requests"] > 0


def test_resuming_a_rollout_restarts_a_stack_whose_data_plane_died(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--stable-weight", "100", "--canary-weight", "0")
    stack.ok("rollout", "--detach", "--steps", "10,50", "--min-duration", "60s",
             "--max-duration", "120s", "--interval", "1s", "--no-baseline")  # fmt: skip
    wait_for(lambda: stack.status()["listener"]["weights"]["canary"] == 10, 30, "step 1")
    plane = stack.paths.dataplane_pid()
    assert plane is not None
    os.kill(plane, signal.SIGKILL)
    wait_for(lambda: not stack_processes(stack.paths.marker), 15, "the stack's processes to die")
    assert stack.status()["stack_status"] == "STOPPED"

    stack.ok("rollout", "--detach")  # the user resumes it: the stack comes back for it
    status = stack.status()
    assert status["stack_status"] != "STOPPED"
    assert status["listener"]["weights"] == {"stable": 90, "canary": 10, "baseline": 0}
    wait_for(lambda: rollout(stack)["controller"]["pid"] is not None, 30, "a controller")
    stack.ok("abort")


def rollout(stack: LocalStack) -> dict[str, Any]:
    doc: dict[str, Any] = stack.status()["rollout"]
    return doc


def ended_or_paused(stack: LocalStack) -> dict[str, Any] | None:
    doc = stack.status()["rollout"]
    if doc is None:  # ended: the last one in the history says how
        return {"status": stack.ok("history", "-o", "json").json()[-1]["kind"]}
    return doc if doc["status"] in ("paused", "promoted", "rolled_back") else None
