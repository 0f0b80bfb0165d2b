"""A stack update never takes tasks from a canary that serves traffic: a rollout sizes the
canary for its share with UpdateService, and the stack's DesiredCountCanary (re-read at
every update) must not scale it back (issue 11 item 9)."""

from __future__ import annotations

from typing import Any

from canary_deploy.aws.promotion import live_parameters
from canary_deploy.aws.stack import StackInfo
from canary_deploy.backend import ServiceStatus
from canary_deploy.weights import Weights
from tests.aws.stubs import RecordingProgress
from tests.aws.test_promotion import FakeEcs, info


def live(
    stack: StackInfo, weights: Weights, ecs: FakeEcs, canary_count: int | None = None
) -> tuple[dict[str, Any], list[str]]:
    progress = RecordingProgress()
    params = live_parameters(stack, weights, ecs, progress, canary_count=canary_count)  # type: ignore[arg-type]
    return params, progress.lines


def services(canary: int, baseline: int = 0) -> FakeEcs:
    return FakeEcs(
        {
            "canary": ServiceStatus("demo-canary", canary, 0, canary, "COMPLETED"),
            "baseline": ServiceStatus("demo-baseline", baseline, 0, baseline, "COMPLETED"),
        }
    )


def test_a_promotion_keeps_the_canary_a_rollout_scaled_up() -> None:
    stack = info({"DesiredCountCanary": "1", "DesiredCountBaseline": "0"})
    params, lines = live(stack, Weights(0, 100), services(canary=4))
    assert params["DesiredCountCanary"] == "4"
    assert (
        "Keeping the canary's 4 live task(s) in the stack update (it serves 100% of the "
        "traffic; the update would give it 1)"
    ) in lines


def test_a_baseline_step_keeps_both_arms() -> None:
    stack = info({"DesiredCountCanary": "1", "DesiredCountBaseline": "0"})
    params, _ = live(stack, Weights(0, 50, 50), services(canary=2, baseline=2))
    assert (params["DesiredCountCanary"], params["DesiredCountBaseline"]) == ("2", "2")


def test_the_count_asked_for_stands_when_it_is_not_fewer_or_the_canary_serves_nothing() -> None:
    stack = info({"DesiredCountCanary": "1", "DesiredCountBaseline": "0"})
    # A deploy asking for more than runs gets it (the key is left to the caller's value).
    params, lines = live(stack, Weights(95, 5), services(canary=2), canary_count=3)
    assert "DesiredCountCanary" not in params and lines == []
    # As many as the stack says: nothing to keep.
    params, _ = live(stack, Weights(95, 5), services(canary=1))
    assert "DesiredCountCanary" not in params
    # After a rollback (no canary traffic) a deploy may scale a left-over canary down.
    params, _ = live(stack, Weights(100, 0), services(canary=4), canary_count=1)
    assert "DesiredCountCanary" not in params
