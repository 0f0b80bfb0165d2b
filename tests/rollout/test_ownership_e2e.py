"""One owner of the weights during a rollout, end to end on the local stack through the
CLI: the seed's verbs yield to a running rollout, an outside change pauses it, steering
commands return once in effect, and a rollout starts again after a rollback."""

from __future__ import annotations

import getpass
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.local.conftest import LocalStack, new_stack, wait_for
from tests.rollout.test_local_e2e import app, deploy, history

__all__ = ["new_stack"]  # the fixture, re-exported for this module

HELD = ("--steps", "10,50,100", "--min-duration", "60s", "--max-duration", "120s",
        "--interval", "1s")  # fmt: skip
USER = getpass.getuser()
ALL_STABLE = {"stable": 100, "canary": 0, "baseline": 0}


@contextmanager
def rolling(stack: LocalStack, *plan: str) -> Iterator[subprocess.Popen[str]]:
    """`canary rollout` in a second terminal, held at its first step."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "canary_deploy", "rollout", *(plan or HELD)],
        cwd=stack.root, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: live_weights(stack)["canary"] == 10, 60, "step 1")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None and not proc.stdout.closed:
            proc.communicate()


def live_weights(stack: LocalStack) -> dict[str, int]:
    weights: dict[str, int] = stack.admin("GET", "/weights")
    return weights


def actors(stack: LocalStack) -> set[tuple[str, str]]:
    return {(e["kind"], e["actor"]) for e in history(stack)}


def test_set_weights_and_deploy_are_refused_and_deploy_force_ends_the_rollout_first(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    deploy(stack, app("v1"), app("v2"))
    with rolling(stack) as proc:
        before = live_weights(stack)
        refused = stack.run("set-weights", "0", "100")
        assert refused.exit_code == 2, refused.stderr
        said = " ".join(refused.stderr.split())
        assert "owns the listener's weights" in said
        assert "canary pause" in said and "canary abort" in said
        assert live_weights(stack) == before, "nothing changed"

        v3 = app("v3")
        refused = stack.run("deploy", "--image-canary", v3)
        assert refused.exit_code == 2 and "canary abort" in refused.stderr, refused.stderr
        assert stack.admin("GET", "/spec")["image_canary"] == app("v2")

        forced = stack.run("deploy", "--force", "--image-canary", v3)
        assert forced.exit_code == 0, forced.stderr
        assert proc.wait(timeout=30) == 1  # the rollout ended rolled back
    assert "aborted by" in forced.stderr
    assert ("abort", f"{USER} (deploy --force)") in actors(stack)
    status = stack.status()
    assert status["listener"]["weights"] == ALL_STABLE
    assert status["versions"]["canary"]["task_definition"]["image"] == v3
    assert status["rollout"] is None


def test_an_outside_change_pauses_the_rollout_and_steering_returns_once_in_effect(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    deploy(stack, app("v1"), app("v2"))
    with rolling(stack) as proc:
        # The console: a weight change the controller did not make.
        stack.admin("PUT", "/weights", {"stable": 50, "canary": 50})
        wait_for(lambda: stack.status()["rollout"]["status"] == "paused", 30, "the pause")
        assert live_weights(stack) == {"stable": 50, "canary": 50, "baseline": 0}
        shown = stack.ok("status").stdout
        assert "paused" in shown and "changed outside the rollout" in shown
        assert any(e["kind"] == "external" for e in history(stack))

        # Paused: a human may set weights, and `resume` puts the step's back.
        stack.ok("set-weights", "60", "40")
        resumed = stack.ok("resume", "-o", "json").json()
        assert resumed["rollout"]["status"] == "running"
        assert resumed["weights"] == {"stable": 80, "canary": 10, "baseline": 10}
        assert live_weights(stack) == resumed["weights"]

        # Someone deploys another canary image behind the rollout's back: never promoted.
        spec = stack.admin("GET", "/spec")
        stack.admin("PUT", "/spec", {**spec, "image_canary": app("v3")})
        promoted = stack.run("promote", "--full")
        assert promoted.exit_code == 1, promoted.stdout + promoted.stderr
        said = " ".join(promoted.stderr.split())
        assert "did not take effect" in said and "not promoting it" in said
        assert stack.admin("GET", "/spec")["image_stable"] == app("v1")

        rolled = stack.ok("rollback", "-o", "json").json()
        # In effect when the command returns: no wait.
        assert rolled["listener"]["weights"] == ALL_STABLE == live_weights(stack)
        assert proc.wait(timeout=30) == 1
    assert ("abort", f"{USER} (rollback)") in actors(stack)
    assert ("resumed", USER) in actors(stack)


def test_sigterm_the_controller_then_abort_at_once_then_roll_out_again(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    deploy(stack, app("v1"), app("v2"))
    with rolling(stack) as proc:
        proc.send_signal(signal.SIGTERM)
        aborted = stack.run("abort", "-o", "json")  # at once: not waiting for it to exit
        assert aborted.exit_code == 0, aborted.stdout + aborted.stderr
        doc: dict[str, Any] = aborted.json()
        assert doc["rollout"]["status"] == "rolled_back"
        assert doc["weights"] == ALL_STABLE == live_weights(stack)
    assert stack.status()["versions"]["canary"]["service"]["desired"] == 0

    # The same images again after the rollback: the canary is scaled back first.
    with rolling(stack, *HELD, "-o", "json") as proc:
        status = stack.status()
        assert status["rollout"]["id"] == 2
        assert status["versions"]["canary"]["service"]["running"] == 1
        stack.ok("abort")
        out, _ = proc.communicate(timeout=30)
    assert json.loads(out)["status"] == "rolled_back"  # stdout: one JSON document
    notes = [e["message"] for e in history(stack) if e["rollout_id"] == 2 and e["kind"] == "note"]
    assert any(n.startswith("canary scaled back to 1 task(s)") for n in notes)
    assert any("rollout #1 rolled back this image" in n for n in notes)
