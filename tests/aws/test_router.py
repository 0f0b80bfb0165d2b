"""The listener router: one ModifyListener with every group and stickiness, read back."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from canary_deploy.aws.outputs import NoBaseline, StackOutputs
from canary_deploy.aws.router import AlbRouter, configured_stickiness, to_alb
from canary_deploy.errors import OperationFailed
from canary_deploy.weights import Weights
from tests.aws.stubs import ERRORS, OUTPUTS, OUTPUTS_TWO_GROUPS, stubbed

STABLE, CANARY = OUTPUTS.target_group_stable_arn, OUTPUTS.target_group_canary_arn
BASELINE = OUTPUTS.target_group_baseline_arn
NOT_STICKY = {"StickinessEnabled": "false", "StickinessDurationSeconds": "3600"}


def sticky_stack(seconds: int) -> dict[str, str]:
    """The stack parameters of a stack deployed with stickiness for `seconds`."""
    return {"StickinessEnabled": "true", "StickinessDurationSeconds": str(seconds)}


def make_router(
    client: Any, parameters: dict[str, str] | None = None, outputs: StackOutputs = OUTPUTS
) -> AlbRouter:
    """A router over `client`; `parameters`: the stack's (None: reading them fails)."""

    def read() -> dict[str, str]:
        if parameters is None:
            raise AssertionError("the stack parameters were read")
        return parameters

    return AlbRouter(client, lambda: outputs, ERRORS, lambda: configured_stickiness(read()))


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


def test_set_weights_sends_every_group_and_the_stacks_stickiness_in_one_call() -> None:
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
        make_router(client, sticky_stack(900)).set_weights(Weights(75, 25))
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
        make_router(client).set_weights(Weights(100, 0))
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
        router = make_router(client)
        assert router.get_weights() == percent


def test_a_rollout_step_sets_all_three_groups_in_one_call() -> None:
    client, stub = stubbed("elbv2")
    sticky = {"Enabled": True, "DurationSeconds": 300}
    stub.add_response("describe_listeners", listener(95, 5, sticky))
    # A baseline step binds nobody (canary_deploy.stickiness): stickiness off in the call.
    stub.add_response("modify_listener", {}, modify_request(90, 5, {"Enabled": False}, 5))
    stub.add_response("describe_listeners", listener(90, 5, {"Enabled": False}, baseline=5))
    with stub:
        router = make_router(client, sticky_stack(300))
        router.set_weights(Weights(90, 5, 5))
        assert router.verify_weights(Weights(90, 5, 5))
        stub.assert_no_pending_responses()


def test_ending_a_rollout_takes_canary_and_baseline_to_zero_in_one_call() -> None:
    client, stub = stubbed("elbv2")
    stub.add_response("describe_listeners", listener(90, 5, {"Enabled": False}, baseline=5))
    stub.add_response("modify_listener", {}, modify_request(100, 0, {"Enabled": False}))
    with stub:
        make_router(client).set_weights(Weights(100, 0, 0))
        stub.assert_no_pending_responses()


def test_a_stack_without_the_baseline_group_keeps_working_with_two_groups() -> None:
    client, stub = stubbed("elbv2")
    stub.add_response("describe_listeners", listener(190, 10, {"Enabled": False}, None))
    stub.add_response("describe_listeners", listener(190, 10, {"Enabled": False}, None))
    stub.add_response(
        "modify_listener", {}, modify_request(75, 25, {"Enabled": False}, baseline=None)
    )
    with stub:
        router = make_router(client, NOT_STICKY, OUTPUTS_TWO_GROUPS)
        assert router.get_weights() == Weights(95, 5)
        router.set_weights(Weights(75, 25))
        stub.assert_no_pending_responses()


def test_baseline_weight_on_a_stack_without_the_group_says_deploy_and_sends_nothing() -> None:
    client, stub = stubbed("elbv2")
    with stub, pytest.raises(NoBaseline) as exc:
        make_router(client, outputs=OUTPUTS_TWO_GROUPS).set_weights(Weights(90, 5, 5))
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
        make_router(client).set_weights(Weights(75, 25))
    assert exc.value.exit_code == 1
    assert exc.value.hint is not None and "deploy" in exc.value.hint


def test_throttling_after_retries_fails_cleanly_without_a_write() -> None:
    client, stub = stubbed("elbv2")
    stub.add_client_error("describe_listeners", "Throttling", "Rate exceeded", 400)
    with stub, pytest.raises(OperationFailed, match="throttled") as exc:
        make_router(client).set_weights(Weights(75, 25))
    assert exc.value.exit_code == 1
    stub.assert_no_pending_responses()  # modify_listener was never attempted


def test_access_denied_names_the_action() -> None:
    client, stub = stubbed("elbv2")
    stub.add_response("describe_listeners", listener(95, 5, {"Enabled": False}))
    stub.add_client_error(
        "modify_listener", "AccessDenied", "not authorized to perform: ModifyListener", 403
    )
    with stub, pytest.raises(OperationFailed) as exc:
        make_router(client, NOT_STICKY).set_weights(Weights(75, 25))
    assert "access denied while trying to set the listener weights to 75/25" in exc.value.message
    assert "ModifyListener" in exc.value.message
    assert exc.value.hint is not None and "IAM" in exc.value.hint


def test_a_rollback_turns_stickiness_off_in_the_same_call_without_reading_the_stack() -> None:
    client, stub = stubbed("elbv2")
    sticky = {"Enabled": True, "DurationSeconds": 900}
    stub.add_response("describe_listeners", listener(95, 5, sticky))
    # Bound clients would keep reaching the canary at weight 0 (docs/balancer.md).
    stub.add_response("modify_listener", {}, modify_request(100, 0, {"Enabled": False}))
    with stub:
        make_router(client).set_weights(Weights(100, 0))  # the stack is not read: no extra call
        stub.assert_no_pending_responses()


def test_the_next_step_turns_stickiness_on_again_with_the_stacks_duration() -> None:
    client, stub = stubbed("elbv2")
    # After the rollback the live listener has stickiness off and no duration: the
    # duration comes from the stack's parameters, not from the listener.
    stub.add_response("describe_listeners", listener(100, 0, {"Enabled": False}))
    stub.add_response(
        "modify_listener", {}, modify_request(95, 5, {"Enabled": True, "DurationSeconds": 900})
    )
    with stub:
        make_router(client, sticky_stack(900)).set_weights(Weights(95, 5))
        stub.assert_no_pending_responses()


def test_stickiness_the_stack_does_not_configure_is_turned_off() -> None:
    client, stub = stubbed("elbv2")
    stub.add_response(
        "describe_listeners", listener(95, 5, {"Enabled": True, "DurationSeconds": 60})
    )
    stub.add_response("modify_listener", {}, modify_request(90, 10, {"Enabled": False}))
    with stub:
        make_router(client, NOT_STICKY).set_weights(Weights(90, 10))
        stub.assert_no_pending_responses()


OIDC = {
    "Issuer": "https://idp.example.com",
    "AuthorizationEndpoint": "https://idp.example.com/authorize",
    "TokenEndpoint": "https://idp.example.com/token",
    "UserInfoEndpoint": "https://idp.example.com/userinfo",
    "ClientId": "canary-app",
    "OnUnauthenticatedRequest": "authenticate",
}
COGNITO = {
    "UserPoolArn": "arn:aws:cognito-idp:us-east-1:1:userpool/us-east-1_abc",
    "UserPoolClientId": "client",
    "UserPoolDomain": "demo",
}


def test_authenticate_actions_before_the_forward_are_kept_with_their_order() -> None:
    client, stub = stubbed("elbv2")
    forward = listener(95, 5, {"Enabled": False})["Listeners"][0]["DefaultActions"][0]
    described = [
        {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": OIDC},
        {"Type": "authenticate-cognito", "Order": 2, "AuthenticateCognitoConfig": COGNITO},
        {**forward, "Order": 3},
    ]
    stub.add_response(
        "describe_listeners",
        {"Listeners": [{"ListenerArn": OUTPUTS.listener_arn, "DefaultActions": described}]},
    )
    new_forward = modify_request(75, 25, {"Enabled": False})["DefaultActions"][0]
    # DescribeListeners never returns the OIDC client secret: ModifyListener keeps the
    # existing one only when told so.
    oidc = {**OIDC, "UseExistingClientSecret": True}
    sent = [
        {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": oidc},
        {"Type": "authenticate-cognito", "Order": 2, "AuthenticateCognitoConfig": COGNITO},
        {**new_forward, "Order": 3},
    ]
    stub.add_response(
        "modify_listener", {}, {"ListenerArn": OUTPUTS.listener_arn, "DefaultActions": sent}
    )
    with stub:
        make_router(client, NOT_STICKY).set_weights(Weights(75, 25))
        stub.assert_no_pending_responses()


def test_a_listener_at_zero_zero_is_reported_as_sending_nothing_not_as_all_stable() -> None:
    client, stub = stubbed("elbv2")
    for _ in range(3):
        stub.add_response("describe_listeners", listener(0, 0, {"Enabled": False}))
    with stub:
        router = make_router(client)
        state = router.listener_state()
        assert state.weights is None
        assert state.problem is not None and "every target group has weight 0" in state.problem
        with pytest.raises(OperationFailed, match="forwards no request") as exc:
            router.get_weights()
        assert exc.value.hint is not None and "set-weights 100 0" in exc.value.hint
        assert not router.verify_weights(Weights(100, 0))


def test_set_weights_brings_a_listener_at_zero_zero_back() -> None:
    client, stub = stubbed("elbv2")
    stub.add_response("describe_listeners", listener(0, 0, {"Enabled": False}))
    stub.add_response("modify_listener", {}, modify_request(100, 0, {"Enabled": False}))
    with stub:
        make_router(client).set_weights(Weights(100, 0))
        stub.assert_no_pending_responses()


def test_set_weights_never_sends_every_group_at_zero() -> None:
    every = [Weights(s, c, 100 - s - c) for s in range(101) for c in range(101 - s)]
    assert all(sum(to_alb(w)) > 0 for w in every)


RULE = OUTPUTS.listener_arn.replace(":listener/", ":listener-rule/") + "/0123456789abcdef"


def test_an_adopted_rule_gets_one_modify_rule_with_its_other_actions_and_the_seams_stickiness() -> (
    None
):
    client, stub = stubbed("elbv2")
    auth = {"Type": "authenticate-cognito", "Order": 1, "AuthenticateCognitoConfig": {
        "UserPoolArn": "arn:aws:cognito-idp:us-east-1:1:userpool/p", "UserPoolClientId": "c",
        "UserPoolDomain": "d"}}  # fmt: skip
    forward = modify_request(100, 0, {"Enabled": False})["DefaultActions"][0]
    rule = {"RuleArn": RULE, "Priority": "40", "Actions": [auth, {**forward, "Order": 2}]}
    stub.add_response("describe_rules", {"Rules": [rule]}, {"RuleArns": [RULE]})
    sent = modify_request(90, 10, {"Enabled": True, "DurationSeconds": 600})["DefaultActions"][0]
    stub.add_response("modify_rule", {}, {"RuleArn": RULE, "Actions": [auth, {**sent, "Order": 2}]})
    outputs = replace(OUTPUTS, rule_arn=RULE)
    with stub:
        AlbRouter(client, lambda: outputs, ERRORS, lambda: 600).set_weights(Weights(90, 10))
        stub.assert_no_pending_responses()


def test_a_forward_with_a_group_canary_does_not_know_is_never_shortened() -> None:
    client, stub = stubbed("elbv2")
    answer = listener(100, 0, {"Enabled": False})
    groups = answer["Listeners"][0]["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
    groups.append({"TargetGroupArn": "arn:aws:elasticloadbalancing:x:targetgroup/other/1",
                   "Weight": 0})  # fmt: skip
    stub.add_response("describe_listeners", answer)
    with stub, pytest.raises(OperationFailed, match="targetgroup/other/1 that canary does not"):
        make_router(client).set_weights(Weights(90, 10))
    stub.assert_no_pending_responses()
