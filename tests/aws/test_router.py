"""The listener router: one ModifyListener with every group and stickiness, read back."""

from __future__ import annotations

from typing import Any

import pytest

from canary_deploy.aws.router import AlbRouter
from canary_deploy.aws.stack import NoBaseline
from canary_deploy.errors import OperationFailed
from canary_deploy.weights import Weights
from tests.aws.stubs import ERRORS, OUTPUTS, OUTPUTS_TWO_GROUPS, stubbed

STABLE, CANARY = OUTPUTS.target_group_stable_arn, OUTPUTS.target_group_canary_arn
BASELINE = OUTPUTS.target_group_baseline_arn


def listener(
    stable: int, canary: int, sticky: dict[str, Any], baseline: int | None = 0
) -> dict[str, Any]:
    """A DescribeListeners answer whose forward action splits stable/canary/baseline
    (`baseline=None`: a listener of a stack without the baseline group)."""
    return {"Listeners": [modify_request(stable, canary, sticky, baseline)]}


def modify_request(
    stable: int, canary: int, sticky: dict[str, Any], baseline: int | None = 0
) -> dict[str, Any]:
    """The one ModifyListener call we expect: every group and the stickiness config
    (`baseline=None`: only stable and canary, as on a stack without the baseline group)."""
    groups = [
        {"TargetGroupArn": STABLE, "Weight": stable},
        {"TargetGroupArn": CANARY, "Weight": canary},
    ]
    if baseline is not None:
        groups.append({"TargetGroupArn": BASELINE, "Weight": baseline})
    return {
        "ListenerArn": OUTPUTS.listener_arn,
        "DefaultActions": [
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": groups,
                    "TargetGroupStickinessConfig": sticky,
                },
            }
        ],
    }


def test_set_weights_sends_every_group_and_keeps_stickiness_in_one_call() -> None:
    client, stub = stubbed("elbv2")
    sticky = {"Enabled": True, "DurationSeconds": 900}
    stub.add_response(
        "describe_listeners", listener(95, 5, sticky), {"ListenerArns": [OUTPUTS.listener_arn]}
    )
    stub.add_response(
        "modify_listener",
        {},
        modify_request(75, 25, sticky),
    )
    with stub:
        AlbRouter(client, lambda: OUTPUTS, ERRORS).set_weights(Weights(75, 25))
        stub.assert_no_pending_responses()


def test_rollback_to_stable_keeps_canary_and_baseline_groups_at_weight_zero() -> None:
    client, stub = stubbed("elbv2")
    stub.add_response("describe_listeners", listener(50, 50, {"Enabled": False}))
    stub.add_response(
        "modify_listener",
        {},
        modify_request(100, 0, {"Enabled": False}),
    )
    with stub:
        AlbRouter(client, lambda: OUTPUTS, ERRORS).set_weights(Weights(100, 0))
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("alb", "percent"),
    [
        ((190, 10, 0), Weights(95, 5)),
        ((999, 0, 0), Weights(100, 0)),
        ((1, 1, 0), Weights(50, 50)),
        ((180, 10, 10), Weights(90, 5, 5)),
        ((1, 1, 2), Weights(25, 25, 50)),
    ],
)
def test_weights_set_elsewhere_are_read_as_percent(
    alb: tuple[int, int, int], percent: Weights
) -> None:
    client, stub = stubbed("elbv2")
    stable, canary, baseline = alb
    stub.add_response("describe_listeners", listener(stable, canary, {"Enabled": False}, baseline))
    with stub:
        router = AlbRouter(client, lambda: OUTPUTS, ERRORS)
        assert router.get_weights() == percent


def test_a_rollout_step_sets_all_three_groups_in_one_call() -> None:
    client, stub = stubbed("elbv2")
    sticky = {"Enabled": True, "DurationSeconds": 300}
    stub.add_response("describe_listeners", listener(95, 5, sticky))
    stub.add_response("modify_listener", {}, modify_request(90, 5, sticky, baseline=5))
    stub.add_response("describe_listeners", listener(90, 5, sticky, baseline=5))
    with stub:
        router = AlbRouter(client, lambda: OUTPUTS, ERRORS)
        router.set_weights(Weights(90, 5, 5))
        assert router.verify_weights(Weights(90, 5, 5))
        stub.assert_no_pending_responses()


def test_ending_a_rollout_takes_canary_and_baseline_to_zero_in_one_call() -> None:
    client, stub = stubbed("elbv2")
    stub.add_response("describe_listeners", listener(90, 5, {"Enabled": False}, baseline=5))
    stub.add_response("modify_listener", {}, modify_request(100, 0, {"Enabled": False}))
    with stub:
        AlbRouter(client, lambda: OUTPUTS, ERRORS).set_weights(Weights(100, 0, 0))
        stub.assert_no_pending_responses()


def test_a_stack_without_the_baseline_group_keeps_working_with_two_groups() -> None:
    client, stub = stubbed("elbv2")
    stub.add_response("describe_listeners", listener(190, 10, {"Enabled": False}, None))
    stub.add_response("describe_listeners", listener(190, 10, {"Enabled": False}, None))
    stub.add_response(
        "modify_listener", {}, modify_request(75, 25, {"Enabled": False}, baseline=None)
    )
    with stub:
        router = AlbRouter(client, lambda: OUTPUTS_TWO_GROUPS, ERRORS)
        assert router.get_weights() == Weights(95, 5)
        router.set_weights(Weights(75, 25))
        stub.assert_no_pending_responses()


def test_baseline_weight_on_a_stack_without_the_group_says_deploy_and_sends_nothing() -> None:
    client, stub = stubbed("elbv2")
    with stub, pytest.raises(NoBaseline) as exc:
        AlbRouter(client, lambda: OUTPUTS_TWO_GROUPS, ERRORS).set_weights(Weights(90, 5, 5))
    assert "no baseline target group" in exc.value.message
    assert exc.value.hint is not None and "deploy" in exc.value.hint
    stub.assert_no_pending_responses()


def test_missing_listener_is_explained() -> None:
    client, stub = stubbed("elbv2")
    stub.add_client_error(
        "describe_listeners", "ListenerNotFound", "One or more listeners not found"
    )
    with (
        stub,
        pytest.raises(OperationFailed, match="listener of stack demo no longer exists") as exc,
    ):
        AlbRouter(client, lambda: OUTPUTS, ERRORS).set_weights(Weights(75, 25))
    assert exc.value.exit_code == 1
    assert exc.value.hint is not None and "deploy" in exc.value.hint


def test_throttling_after_retries_fails_cleanly_without_a_write() -> None:
    client, stub = stubbed("elbv2")
    stub.add_client_error("describe_listeners", "Throttling", "Rate exceeded", 400)
    with stub, pytest.raises(OperationFailed, match="throttled") as exc:
        AlbRouter(client, lambda: OUTPUTS, ERRORS).set_weights(Weights(75, 25))
    assert exc.value.exit_code == 1
    stub.assert_no_pending_responses()  # modify_listener was never attempted


def test_access_denied_names_the_action() -> None:
    client, stub = stubbed("elbv2")
    stub.add_response("describe_listeners", listener(95, 5, {"Enabled": False}))
    stub.add_client_error(
        "modify_listener", "AccessDenied", "not authorized to perform: ModifyListener", 403
    )
    with stub, pytest.raises(OperationFailed) as exc:
        AlbRouter(client, lambda: OUTPUTS, ERRORS).set_weights(Weights(75, 25))
    assert "access denied while trying to set the listener weights to 75/25" in exc.value.message
    assert "ModifyListener" in exc.value.message
    assert exc.value.hint is not None and "IAM" in exc.value.hint
