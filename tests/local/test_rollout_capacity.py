"""Sizing the canary and the baseline during a rollout on the real local stack: scale
returns at once, adds tasks without restarting the running ones, and healthy_targets
reads the balancer's health checks (issue 11 items 7 and 9)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from canary_deploy.backend import SilentProgress
from canary_deploy.config import load_settings
from canary_deploy.local.target import LocalTarget
from tests.local.conftest import LocalStack, wait_for

pytestmark = pytest.mark.integration


def test_scale_adds_canary_and_baseline_tasks_without_restarting_the_running_ones(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--stable-count", "2", "--canary-count", "1")
    target = LocalTarget.from_settings(
        load_settings(env=stack.env, config_file=stack.root / "none.toml")
    )
    workload = target.workload
    workload.start_baseline(1, SilentProgress())
    # The canary task start_baseline replaced is healthy until it is deregistered (as on
    # ALB, where a target counts until it drains).
    wait_for(
        lambda: workload.healthy_targets(("canary", "baseline")) == {"canary": 1, "baseline": 1},
        30,
        "the replaced canary task to leave its group",
    )
    running = {
        t["pid"]
        for t in stack.tasks()
        if t["version"] in ("canary", "baseline") and t["health"] == "healthy"
    }

    workload.scale("canary", 2)
    workload.scale("baseline", 2)
    # Returned at once: the new tasks are not healthy yet (the controller waits across ticks).
    assert workload.healthy_targets(("canary", "baseline")) == {"canary": 1, "baseline": 1}
    wait_for(
        lambda: workload.healthy_targets(("canary", "baseline")) == {"canary": 2, "baseline": 2},
        30,
        "two healthy canary and two healthy baseline targets",
    )
    now = {t["pid"] for t in stack.tasks() if t["version"] in ("canary", "baseline")}
    assert running < now, "the running tasks were kept, the new ones added"
    services = workload.describe_services()
    assert (services["canary"].desired, services["baseline"].desired) == (2, 2)
