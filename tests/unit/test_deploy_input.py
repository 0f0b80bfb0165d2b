"""`deploy` refuses what would silently go wrong: an unknown builtin version, an empty
image, a group with traffic and no task; AWS rollouts judge on CloudWatch's minutes
(issue 13, items 14 and 15)."""

from pathlib import Path

import pytest

from canary_deploy.backend import ReleaseSpec
from canary_deploy.errors import UsageError
from canary_deploy.local.commands import BUILTIN_VERSIONS, parse_image
from canary_deploy.rollout.plan import build_plan
from canary_deploy.sample_app.model import MODELS
from canary_deploy.usecases import starved_groups
from canary_deploy.weights import Weights
from tests.unit.cli import canary


def test_builtin_versions_are_the_sample_apps_models() -> None:
    assert set(BUILTIN_VERSIONS) == set(MODELS)


@pytest.mark.parametrize("image", ["builtin:v3", "builtin:", "builtin:V1"])
def test_an_unknown_builtin_version_is_refused(image: str) -> None:
    with pytest.raises(UsageError, match="the sample app's versions are builtin:v1 and builtin:v2"):
        parse_image(image, role="canary image")


def _spec(stable: int, canary: int, weights: Weights) -> ReleaseSpec:
    return ReleaseSpec(
        image_stable="builtin:v1",
        image_canary="builtin:v2",
        desired_count_stable=stable,
        desired_count_canary=canary,
        container_port=8000,
        weights=weights,
    )


def test_a_group_with_traffic_and_no_task_is_named() -> None:
    first = Weights(95, 5)
    assert starved_groups(_spec(0, 1, first), None) == [
        "stable would have 0 tasks while it gets 95% of the requests"
    ]
    assert starved_groups(_spec(2, 0, first), None) == [
        "canary would have 0 tasks while it gets 5% of the requests"
    ]
    # A deploy keeps the live weights: all traffic on the canary makes 0 stable tasks fine.
    assert starved_groups(_spec(0, 1, first), Weights(0, 100)) == []
    assert starved_groups(_spec(2, 0, first), Weights(100, 0)) == []


@pytest.mark.parametrize(
    "args,needle",
    [
        (
            ["--image-canary", "builtin:v3"],
            "the sample app's versions are builtin:v1 and builtin:v2",
        ),
        (["--image-canary", ""], "the canary image is empty"),
        (["--image-stable", "  "], "the stable image is empty"),
        (
            ["--stable-count", "0"],
            "stable would have 0 tasks while it gets 95% of the requests: those requests "
            "would fail with 503",
        ),
    ],
)
def test_deploy_refuses_before_anything_is_started(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    done = canary(tmp_path, "deploy", "--listen", "127.0.0.1:0", *args)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr
    assert "hint:" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / ".canary" / "daemon.pid").exists()


def test_aws_intervals_are_whole_minutes() -> None:
    said: list[str] = []
    plan = build_plan("aws", {"interval": "5s"}, warn=said.append)
    assert plan.interval_s == 60.0
    assert said == [
        "interval 5s: CloudWatch reports the ALB's metrics per minute, so the judge looks every 60s"
    ]
    assert build_plan("aws", {"interval": 90}, warn=said.append).interval_s == 120.0
    assert build_plan("aws", {"interval": "2m"}, warn=said.append).interval_s == 120.0
    assert len(said) == 2
    # Locally metrics are complete every second: any interval stands.
    assert build_plan("local", {"interval": "5s"}, warn=said.append).interval_s == 5.0
