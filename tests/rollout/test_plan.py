"""`build_plan`: what it refuses, said where the bad value came from (file or flag)."""

from __future__ import annotations

from typing import Any

import pytest

from canary_deploy.errors import UsageError
from canary_deploy.rollout.plan import build_plan

HINT = "check the rollout command's flags and [rollout] in canary.toml"


@pytest.mark.parametrize(
    ("config", "flags", "message"),
    [
        ({"stepz": [5]}, {}, "rollout.stepz: unknown setting; did you mean steps?"),
        (
            {"steps": [50, 10]},
            {},
            "rollout: steps: the canary's weight must increase from step to step, got [50, 10]",
        ),
        (
            {"steps": [{"weight": 5, "min_duration": "2m", "max_duration": "1m"}]},
            {},
            "rollout.steps.0: step 5%: max_duration (60s) must not be shorter than "
            "min_duration (120s)",
        ),
        ({"interval": "0s"}, {}, "rollout.interval: Input should be greater than 0 (got '0s')"),
        ({"judge": {"alpha": 2}}, {}, "rollout.judge: alpha must be in (0, 1), got 2.0"),
        (
            {"min_requests": 5},
            {"overrides": {"min_requests": -3}},
            "--min-requests: Input should be greater than or equal to 0 (got -3)",
        ),
        ({}, {"steps": [5, 150]}, "--steps: Input should be less than or equal to 100 (got 150)"),
    ],
    ids=["unknown", "decreasing", "step-max-below-min", "interval", "judge", "flag", "steps"],
)
def test_invalid_settings_are_one_usage_error_naming_their_source(
    config: dict[str, Any], flags: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError) as refused:
        build_plan("local", config, **flags)
    assert refused.value.message == f"invalid rollout settings: {message}"
    assert refused.value.hint == HINT


def test_an_aws_interval_off_the_minute_is_rounded_up_with_a_warning() -> None:
    warnings: list[str] = []
    plan = build_plan("aws", {"interval": "90s"}, warn=warnings.append)
    assert plan.interval_s == 120.0
    assert warnings == [
        "interval 90s: CloudWatch reports the ALB's metrics per minute, so the judge looks "
        "every 120s"
    ]
    assert build_plan("local", {"interval": "90s"}, warn=warnings.append).interval_s == 90.0
    assert len(warnings) == 1
