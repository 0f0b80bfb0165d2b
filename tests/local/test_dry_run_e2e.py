"""`canary deploy --dry-run` on the local target: the spec's changes, nothing started or
changed (no state directory before the first deploy; the running stack keeps its tasks
and weights)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from canary_deploy.local.processes import stack_processes
from tests.local.conftest import LocalStack

pytestmark = pytest.mark.integration


def test_dry_run_lists_the_spec_changes_and_starts_nothing(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    first = stack.ok("--target", "local", "deploy", "--dry-run")
    assert "a deploy would create" in first.stdout
    assert "builtin:v2" in first.stdout
    assert not stack.paths.state_dir.exists()
    assert stack_processes(stack.paths.marker) == []

    stack.ok("--target", "local", "deploy")
    stack.ok("--target", "local", "set-weights", "70", "30")
    doc = stack.ok(
        "--target", "local", "deploy", "--dry-run", "--image-canary", "builtin:v1",
        "--canary-count", "3", "-o", "json",
    ).json()  # fmt: skip
    assert doc["operation"] == "update"
    assert doc["parameters"] == [
        {"name": "image_canary", "before": "builtin:v2", "after": "builtin:v1"},
        {"name": "desired_count_canary", "before": "1", "after": "3"},
    ]
    assert "the listener keeps its live weights" in doc["notes"][0]
    status = stack.status()
    assert status["listener"]["weights"] == {"stable": 70, "canary": 30, "baseline": 0}
    assert status["versions"]["canary"]["task_definition"]["image"] == "builtin:v2"
    assert status["versions"]["canary"]["service"]["desired"] == 1


def test_env_and_secret_flags_say_local_tasks_do_not_get_them(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    result = stack.ok("--target", "local", "deploy", "--dry-run", "--env", "LOG_LEVEL=debug")
    said = " ".join(result.stderr.split())
    assert "local tasks do not get them" in said
    assert "LOG_LEVEL=debug python -m app --port $PORT" in said
    assert "do not get them" not in stack.ok("--target", "local", "deploy", "--dry-run").stderr
