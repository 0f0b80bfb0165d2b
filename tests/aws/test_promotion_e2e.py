"""Promotion on the moto server: stable takes exactly the image the rollout judged, then
all traffic, and the stack records both (moto starts no task: stable is made steady)."""

from __future__ import annotations

import pytest

from canary_deploy.aws.target import AwsTarget
from canary_deploy.config import load_settings
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.aws.stubs import RecordingProgress
from tests.aws.test_rollout import ModifyListenerCounter, UpdateStackRecorder, steady

JUDGED = "repo/app@sha256:" + "c" * 64


@pytest.fixture
def target(aws_env: AwsEnv, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> AwsTarget:
    assert cli("deploy").exit_code == 0
    assert cli("set-weights", "0", "100").exit_code == 0  # the rollout's last step
    target = AwsTarget.from_settings(load_settings())
    steady(target, monkeypatch)
    return target


def test_promotion_makes_the_judged_image_stable_then_records_all_traffic_on_it(
    aws_env: AwsEnv, target: AwsTarget, cli: CliRunner
) -> None:
    # A deploy moved the canary on since the rollout judged JUDGED: the stack's canary
    # image is not what gets promoted.
    assert cli("deploy", IMAGE_URI_CANARY="repo/app:v3").exit_code == 0
    listener, updates = ModifyListenerCounter(target), UpdateStackRecorder(target)
    progress = RecordingProgress()

    target.workload.promote(JUDGED, progress)

    parameters = aws_env.stack_parameters()
    assert parameters["ImageURIStable"] == JUDGED
    assert parameters["ImageURICanary"] == "repo/app:v3"
    assert aws_env.live_weights() == Weights(100, 0)
    assert listener.calls == [[100, 0, 0]]  # after stable's update, never before it
    assert (parameters["StableWeight"], parameters["CanaryWeight"]) == ("100", "0")
    assert [weights_only for weights_only, _ in updates.calls] == [False, True]
    # Both with the stack's own template: a promotion never drops what a deploy rendered.
    assert updates.templates == [None, None]
    assert f"Promoting: the stable service takes {JUDGED} (stack update)" in progress.lines

    # Idempotent: a second call finds everything done and changes nothing.
    target.workload.promote(JUDGED, RecordingProgress())
    assert listener.calls == [[100, 0, 0]]
    assert len(updates.calls) == 2
