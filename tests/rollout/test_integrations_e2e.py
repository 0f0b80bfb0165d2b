"""Hooks and notifications end to end on the local stack: the daemon's controller runs
the command hooks and posts to a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.local.conftest import LocalStack, new_stack, wait_for
from tests.rollout.receiver import Receiver, receiver
from tests.rollout.test_local_e2e import PLAN, app, deploy, history, load

__all__ = ["new_stack"]  # the fixture, re-exported for this module

SMOKE = json.dumps([sys.executable, "-m", "canary_deploy.sample_app.smoke", "-n", "3"])


def configure(stack: LocalStack, hooks: str, webhook: Receiver) -> None:
    """canary.toml: the hooks, one webhook, and a latency threshold nothing reaches (these
    tests are about hooks, not about scheduler noise on a busy machine)."""
    (stack.root / "canary.toml").write_text(
        "[rollout.judge]\nlatency_thresholds_s = [5.0]\n\n"
        f"[rollout.hooks]\n{hooks}\n\n"
        f'[[notifications]]\nurl = "{webhook.url}"\n'
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def notified(webhook: Receiver) -> list[str]:
    return [body["event"] for body in webhook.received()]


def hook_runs(stack: LocalStack) -> list[dict[str, Any]]:
    return [e["data"] for e in history(stack) if e["kind"] == "hook"]


def test_hooks_and_notifications_around_a_promoted_rollout(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    deploy(stack, app("v1"), app("v2"))
    log = stack.root / "hooks.log"
    with receiver() as webhook:
        configure(
            stack,
            'pre_step = "echo pre_step $CANARY_STEP $CANARY_STEP_WEIGHTS >> hooks.log"\n'
            f"pre_promote = {SMOKE}\n"
            'post_rollout = "echo post_rollout $CANARY_STATUS $CANARY_WEIGHTS >> hooks.log"',
            webhook,
        )
        with load(stack):
            result = stack.run("rollout", *PLAN, timeout=150)
        assert result.exit_code == 0, result.stdout + result.stderr
        wait_for(lambda: "promoted" in notified(webhook), 30, "the promoted notification")
        wait_for(lambda: any("post_rollout" in line for line in lines(log)), 30, "post_rollout")
    assert lines(log) == [
        "pre_step 1 80/10/10",  # stable / canary / baseline
        "pre_step 2 0/50/50",
        "pre_step 3 0/100",
        "post_rollout promoted 100/0",
    ]
    assert notified(webhook) == ["started", "step", "step", "step", "promoted"]
    runs = hook_runs(stack)
    smoke = next(run for run in runs if run["hook"] == "pre_promote")
    assert smoke["ok"] and smoke["exit_code"] == 0 and "smoke test passed" in smoke["output"]
    assert all(run["duration_s"] >= 0 for run in runs)
    text = stack.ok("history").stdout
    assert "pre_promote passed in" in text and "`promoted` sent to 127.0.0.1:" in text


def test_a_rolled_back_canary_is_notified_with_evidence_and_runs_on_rollback(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    deploy(stack, app("v1", error_rate=0.01), app("v2", error_rate=0.3))
    log = stack.root / "hooks.log"
    with receiver() as webhook:
        configure(stack, 'on_rollback = "echo on_rollback $CANARY_WEIGHTS >> hooks.log"', webhook)
        with load(stack):
            result = stack.run("rollout", *PLAN, timeout=120)
        assert result.exit_code == 1, result.stdout + result.stderr
        wait_for(lambda: "rolled_back" in notified(webhook), 30, "the rollback notification")
        wait_for(lambda: lines(log), 30, "on_rollback")
        bodies = webhook.received()
    assert lines(log) == ["on_rollback 100/0"]  # run once all traffic was on stable
    assert notified(webhook)[0] == "started" and notified(webhook)[-1] == "rolled_back"
    rolled_back = bodies[-1]
    assert "worse than stable+baseline on errors" in rolled_back["reason"]
    assert rolled_back["evidence"]["verdict"] == "rollback"
    assert any("errors" in m["explanation"] for m in rolled_back["evidence"]["metrics"])


def test_a_failing_pre_promote_gate_blocks_the_promotion(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    deploy(stack, app("v1"), app("v2"))
    with receiver() as webhook:
        configure(stack, 'pre_promote = "echo smoke: /predict failed; exit 1"', webhook)
        with load(stack):
            stack.ok("rollout", "--detach", *PLAN)
            wait_for(lambda: stack.status()["rollout"]["status"] == "paused", 90, "the pause")
            wait_for(lambda: "paused" in notified(webhook), 30, "the paused notification")
        status = stack.status()
        assert status["rollout"]["step"] == 3  # held at the last step, not promoted
        assert status["versions"]["stable"]["task_definition"]["image"].endswith(
            "--version v1 --port $PORT"
        )
        failed = next(run for run in hook_runs(stack) if run["hook"] == "pre_promote")
        assert (failed["ok"], failed["exit_code"]) == (False, 1)
        assert failed["output"] == "smoke: /predict failed"
        assert (
            "the pre_promote hook failed (exit 1: smoke: /predict failed)"
            in stack.ok("status").stdout
        )
        stack.ok("abort")
