"""Automated rollouts end to end on the local stack, through the CLI on 127.0.0.1."""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

import pytest

from canary_deploy.rollout.store import RolloutStore
from tests.local.conftest import LocalStack, new_stack, wait_for

__all__ = ["new_stack"]  # the fixture, re-exported for this module

PLAN = ("--steps", "10,50,100", "--min-duration", "2s", "--max-duration", "5s",
        "--min-requests", "10", "--interval", "1s")  # fmt: skip


def app(version: str, **faults: object) -> str:
    env = " ".join(f"CANARY_FAULT_{k.upper()}={v}" for k, v in faults.items())
    return f"{env} {sys.executable} -m canary_deploy.sample_app --version {version} --port $PORT"


def deploy(stack: LocalStack, stable: str, canary: str) -> None:
    stack.ok(
        "deploy", "--image-stable", stable, "--image-canary", canary,
        "--stable-count", "1", "--stable-weight", "100", "--canary-weight", "0",
    )  # fmt: skip


@contextmanager
def load(stack: LocalStack, rate: int = 100, seconds: int = 120) -> Iterator[Callable[[], Any]]:
    """Background `canary load`; yields a function that stops it and returns its JSON."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "canary_deploy", "load", "--rate", str(rate), "-d", str(seconds),
         "-c", "16", "-o", "json"],
        cwd=stack.root, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    def finish() -> Any:
        out, err = proc.communicate(timeout=seconds + 30)
        return json.loads(out) if out.strip() else {"stderr": err}

    try:
        time.sleep(3)  # stable's baseline for the latency thresholds
        yield finish
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def judge_errors_only(stack: LocalStack) -> None:
    """For tests about rollout mechanics with two equally good versions: a latency
    threshold nothing reaches, so scheduler noise on a busy CI machine cannot produce
    latency evidence (a false rollback is bounded by alpha, not impossible)."""
    (stack.root / "canary.toml").write_text("[rollout.judge]\nlatency_thresholds_s = [5.0]\n")


def history(stack: LocalStack) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = stack.ok("history", "-o", "json").json()
    return events


def test_bad_canary_is_rolled_back_with_evidence(new_stack: Callable[[], LocalStack]) -> None:
    stack = new_stack()
    deploy(stack, app("v1", error_rate=0.01), app("v2", error_rate=0.3))
    with load(stack):
        result = stack.run("rollout", *PLAN, timeout=120)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "rolled back" in result.stderr
    assert stack.status()["listener"]["weights"] == {"stable": 100, "canary": 0, "baseline": 0}
    events = history(stack)
    decision = next(e for e in events if e["kind"] == "decision")
    assert decision["data"]["verdict"] == "rollback"
    errors = decision["data"]["metrics"][0]
    assert errors["canary_hits"] > 0 and errors["e_harm"] >= errors["harm_threshold"]
    rollbacks = [e for e in events if e["kind"] == "weights" and "rollback" in e["message"]]
    assert len(rollbacks) == 1
    text = stack.ok("history").stdout
    assert "harm e=" in text and "rolled back" in text


def test_healthy_canary_is_promoted_without_failed_requests(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    # A service with a realistic 15 ms response time, so scheduler noise on a busy test
    # machine is small next to it.
    deploy(
        stack,
        app("v1", latency_ms=15, latency_jitter_ms=3),
        app("v2", latency_ms=15, latency_jitter_ms=3),
    )
    judge_errors_only(stack)
    with load(stack, seconds=50) as finish:
        result = stack.run("rollout", *PLAN, timeout=150)
        summary = finish()
    assert result.exit_code == 0, result.stdout + result.stderr
    status = stack.status()
    assert status["listener"]["weights"] == {"stable": 100, "canary": 0, "baseline": 0}
    assert status["versions"]["stable"]["task_definition"]["image"].endswith(
        "--version v2 --port $PORT"
    )
    steps = [e["message"] for e in history(stack) if e["kind"] == "weights"]
    assert [m.split(" (")[0] for m in steps] == [
        "weights 100/0 -> 80/10/10",  # stable / canary / baseline
        "weights 80/10/10 -> 0/50/50",
        "weights 0/50/50 -> 0/100",  # above 50%: no baseline, a soak step
        "weights 0/100 -> 100/0",
    ]
    assert summary["total"]["requests"] > 500, summary
    assert summary["total"]["errors"] == 0, summary
    answered = stack.load(10)
    assert set(answered["versions"]) == {"v2"}


def test_latency_regressed_canary_is_rolled_back(new_stack: Callable[[], LocalStack]) -> None:
    stack = new_stack()
    deploy(stack, app("v1", latency_ms=15, latency_jitter_ms=3), app("v2", latency_ms=60))
    # Longer steps than PLAN: latency is not judged in the 3 s after each weight change,
    # and the evidence must not rest on one interval (the burst guard would hold it).
    steps = ("--steps", "10,50,100", "--min-duration", "2s", "--max-duration", "10s",
             "--min-requests", "10", "--interval", "1s")  # fmt: skip
    with load(stack):
        result = stack.run("rollout", *steps, timeout=120)
    assert result.exit_code == 1, result.stdout + result.stderr
    rollback = next(e for e in history(stack) if e["kind"] == "rollback")
    assert "slower than" in rollback["message"]


def _controller_pid(stack: LocalStack) -> int | None:
    with closing(
        RolloutStore(stack.paths.state_dir / "state.db", "ecs-canary-demo-stack")
    ) as store:
        active = store.active()
        alive = active is not None and store.controller_alive(active, now=time.time())
        return active.owner_pid if alive and active is not None else None


def test_kill_9_of_the_controller_and_its_terminal_loses_nothing(
    new_stack: Callable[[], LocalStack],
) -> None:
    """The terminal that started the rollout only watches it: kill -9 it and the daemon's
    controller goes on; kill -9 that controller too and the daemon starts another, which
    continues where it was (every weight change exactly once, none lost)."""
    stack = new_stack()
    deploy(stack, app("v1"), app("v2"))
    judge_errors_only(stack)
    slow = ("--steps", "10,50,100", "--min-duration", "4s", "--max-duration", "4s",
            "--min-requests", "0", "--interval", "1s")  # fmt: skip
    with load(stack):
        proc = subprocess.Popen(
            [sys.executable, "-m", "canary_deploy", "rollout", *slow],
            cwd=stack.root, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for(lambda: any(e["kind"] == "step" for e in history(stack)), 60, "step 2")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
        controller = wait_for(lambda: _controller_pid(stack), 10, "the daemon's controller")
        assert controller != proc.pid
        os.kill(controller, signal.SIGKILL)
        before = [e for e in history(stack) if e["kind"] in ("weights", "step")]
        result = stack.run("rollout", timeout=120)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert re.search(r"Watching rollout #1 at step [23]/3", result.stdout), result.stdout
    events = history(stack)
    assert [e for e in events if e["kind"] in ("weights", "step")][: len(before)] == before
    weights = [e["message"].split(" (")[0] for e in events if e["kind"] == "weights"]
    assert weights == [  # every change exactly once, none lost
        "weights 100/0 -> 80/10/10",  # stable / canary / baseline
        "weights 80/10/10 -> 0/50/50",
        "weights 0/50/50 -> 0/100",  # above 50%: no baseline, a soak step
        "weights 0/100 -> 100/0",
    ]
    daemon_events = stack.admin("GET", "/events")
    starts = [e for e in daemon_events if "rollout controller started" in str(e)]
    assert len(starts) >= 2, daemon_events


@pytest.mark.parametrize("command", ["abort", "promote"])
def test_steering_from_a_second_terminal(new_stack: Callable[[], LocalStack], command: str) -> None:
    stack = new_stack()
    deploy(stack, app("v1"), app("v2"))
    judge_errors_only(stack)
    held = ("--steps", "10,50,100", "--min-duration", "60s", "--max-duration", "120s",
            "--interval", "1s")  # fmt: skip
    with load(stack):
        proc = subprocess.Popen(
            [sys.executable, "-m", "canary_deploy", "rollout", *held],
            cwd=stack.root, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            wait_for(lambda: stack.status()["listener"]["weights"]["canary"] == 10, 60, "step 1")
            shown = stack.status()["rollout"]
            assert (shown["status"], shown["step"], shown["canary_weight"]) == ("running", 1, 10)
            assert "Rollout #1: running at step 1/3" in stack.ok("status").stdout
            # A second terminal watches the same rollout (the daemon runs it): never a
            # second controller.
            again = stack.run("rollout", "--detach")
            assert again.exit_code == 0, again.stderr
            assert "Watching rollout #1 at step 1/3" in again.stdout
            assert "runs in the local daemon" in again.stdout
            stack.ok(command)
            if command == "abort":
                proc.wait(timeout=30)
                assert proc.returncode == 1
                assert stack.status()["listener"]["weights"] == {
                    "stable": 100,
                    "canary": 0,
                    "baseline": 0,
                }
            else:
                wait_for(
                    lambda: stack.status()["listener"]["weights"]["canary"] == 50, 30, "step 2"
                )
                stack.ok("abort")
                proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    actors = {(e["kind"], e["actor"]) for e in history(stack)}
    # Who sent it: the OS user (issue 11 item 2; it used to be the constant "user").
    assert (command if command == "abort" else "promote", getpass.getuser()) in actors
