"""The ALB listener's weighted forward action as a TrafficRouter (ModifyListener fast path)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.aws.outputs import NoBaseline, StackOutputs
from canary_deploy.backend import GROUPS, Role
from canary_deploy.errors import OperationFailed
from canary_deploy.stickiness import listener_stickiness, stickiness_allowed
from canary_deploy.weights import Weights

if TYPE_CHECKING:
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_elbv2.type_defs import (
        ActionOutputTypeDef,
        ActionUnionTypeDef,
        TargetGroupStickinessConfigTypeDef,
    )

# What `status` says, and `get_weights` raises, about a listener whose every group has
# weight 0: ALB accepts it (each weight is 0..999, no minimum sum), and then has no
# target group to send a request to. `set-weights` cannot produce it (percent sums to 100).
NO_TRAFFIC = (
    "the listener forwards no request: every target group has weight 0, so clients get "
    "errors from the load balancer instead of your service"
)
NO_TRAFFIC_HINT = "`canary --target aws set-weights 100 0` sends everything to stable again"


def to_alb(weights: Weights) -> tuple[int, int, int]:
    """Percent -> ALB weights (0..999, relative) of stable, canary and baseline.
    Percent already fits, so keep it.

    >>> to_alb(Weights(75, 25))
    (75, 25, 0)
    >>> to_alb(Weights(90, 5, 5))
    (90, 5, 5)
    """
    # Percent (0..100) is within ALB's 0..ALB_MAX_WEIGHT, and equal ratios mean equal splits.
    return weights.stable, weights.canary, weights.baseline


def configured_stickiness(parameters: Mapping[str, str]) -> int | None:
    """The AWSALBTG duration the stack is deployed with (None: off), from its parameters.

    >>> configured_stickiness({"StickinessEnabled": "true", "StickinessDurationSeconds": "900"})
    900
    >>> print(configured_stickiness({"StickinessEnabled": "false"}))
    None
    """
    if parameters.get("StickinessEnabled", "false").lower() != "true":
        return None
    try:
        return int(parameters.get("StickinessDurationSeconds", ""))
    except ValueError:
        return None


@dataclass(frozen=True)
class ListenerState:
    """What the listener's default action says now."""

    weights: Weights | None  # None: every group at weight 0 (see NO_TRAFFIC)
    stickiness_seconds: int | None  # None when stickiness is off

    @property
    def problem(self) -> str | None:
        """What `status` must say plainly about this listener, if anything."""
        return f"{NO_TRAFFIC}; {NO_TRAFFIC_HINT}" if self.weights is None else None

    def weight_of(self, group: Role) -> int:
        """One group's weight in percent (0 on a listener that forwards nothing)."""
        return 0 if self.weights is None else self.weights.of(group)


class AlbRouter:
    """Reads and writes the listener's weights; never touches the stack.

    The weighted forward is the listener's default action, or on an adopted setup that
    names one, a listener rule's action (ModifyRule then, which also replaces the whole
    action list)."""

    def __init__(
        self,
        client: ElasticLoadBalancingv2Client,
        outputs: Callable[[], StackOutputs],
        errors: ErrorScope,
        configured: Callable[[], int | None],
    ) -> None:
        self._elbv2 = client
        self._outputs = outputs
        self._errors = errors
        # The configured stickiness (seconds, None: off): the source of truth, since the
        # listener's own is off after a rollback and has lost its duration. Our stack's
        # parameters hold it; an adopted setup recorded the listener's at adopt time.
        self._configured = configured

    def _default_actions(self) -> list[ActionOutputTypeDef]:
        out = self._outputs()
        if out.rule_arn:
            with self._errors("read the listener rule"):
                rules = self._elbv2.describe_rules(RuleArns=[out.rule_arn])["Rules"]
            actions = list(rules[0].get("Actions", [])) if rules else []
        else:
            with self._errors("read the listener"):
                listeners = self._elbv2.describe_listeners(ListenerArns=[out.listener_arn])
            actions = list(listeners["Listeners"][0].get("DefaultActions", []))
        if not any(a.get("Type") == "forward" for a in actions):
            where = "listener rule's action" if out.rule_arn else "listener's default action"
            raise OperationFailed(
                f"the {where} is not a forward to the target groups",
                hint="it was changed outside canary; `canary --target aws deploy` restores it "
                "on our stack (on your own service: make it forward to your groups again)",
            )
        return actions

    def listener_state(self) -> ListenerState:
        """Live weights (percent) and stickiness, read from the load balancer."""
        return _state_of(_forward_of(self._default_actions()), self._outputs())

    def get_weights(self) -> Weights:
        """Read the live weights from the load balancer itself."""
        weights = self.listener_state().weights
        if weights is None:
            raise OperationFailed(NO_TRAFFIC, hint=NO_TRAFFIC_HINT)
        return weights

    def set_weights(self, weights: Weights) -> None:
        """One ModifyListener call with every target group and the stickiness config.

        ModifyListener replaces the whole DefaultActions list, so every group is sent
        (weight 0 included), every other action (authenticate-oidc/-cognito before the
        forward) is sent back as it is, with its Order, and stickiness is sent as the
        rule in canary_deploy.stickiness gives it for these weights: a rollback turns it
        off in this same call, without reading the stack. A stack without the baseline
        group gets two groups.
        """
        out = self._outputs()
        if weights.baseline and not out.has_baseline:
            raise NoBaseline()
        actions = self._default_actions()
        _refuse_unknown_groups(_forward_of(actions), out)
        configured = self._configured() if stickiness_allowed(weights) else None
        forward = _forward_action(out, weights, listener_stickiness(configured, weights))
        sent = _with_forward(actions, forward)
        with self._errors(f"set the listener weights to {weights}"):
            if out.rule_arn:
                self._elbv2.modify_rule(RuleArn=out.rule_arn, Actions=sent)
            else:
                self._elbv2.modify_listener(ListenerArn=out.listener_arn, DefaultActions=sent)

    def verify_weights(self, weights: Weights) -> bool:
        """True when the load balancer reports exactly these weights now."""
        return self.listener_state().weights == weights


def _forward_of(actions: Sequence[ActionOutputTypeDef]) -> ActionOutputTypeDef:
    return next(a for a in actions if a.get("Type") == "forward")


def _refuse_unknown_groups(action: ActionOutputTypeDef, out: StackOutputs) -> None:
    """A forward that also names a target group canary does not know: ModifyListener
    replaces the whole action, so a weight change would drop that group. Refused."""
    known = {out.target_group_arn(group) for group in out.groups}
    config = action.get("ForwardConfig", {})
    unknown = [
        tg["TargetGroupArn"]
        for tg in config.get("TargetGroups", [])
        if tg["TargetGroupArn"] not in known
    ]
    if unknown:
        raise OperationFailed(
            f"the forward action also sends to target group(s) {', '.join(unknown)} that "
            "canary does not manage: a weight change would remove them from it",
            hint="remove them from the forward action (or adopt one as the baseline)",
        )


def _state_of(action: ActionOutputTypeDef, out: StackOutputs) -> ListenerState:
    config = action.get("ForwardConfig", {})
    by_arn = {
        tg["TargetGroupArn"]: int(tg.get("Weight", 1)) for tg in config.get("TargetGroups", [])
    }
    if not by_arn and action.get("TargetGroupArn"):
        by_arn = {action["TargetGroupArn"]: 1}
    alb = [by_arn.get(out.target_group_arn(group), 0) for group in out.groups]
    sticky = config.get("TargetGroupStickinessConfig", {})
    seconds = sticky.get("DurationSeconds") if sticky.get("Enabled") else None
    return ListenerState(Weights.from_alb(*alb), seconds)


def _forward_action(
    out: StackOutputs, weights: Weights, stickiness: int | None
) -> ActionUnionTypeDef:
    """The forward to every group of the stack, with the stickiness to send."""
    sticky: TargetGroupStickinessConfigTypeDef = (
        {"Enabled": True, "DurationSeconds": stickiness} if stickiness else {"Enabled": False}
    )
    alb = dict(zip(GROUPS, to_alb(weights), strict=True))
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": out.target_group_arn(group), "Weight": alb[group]}
                for group in out.groups
            ],
            "TargetGroupStickinessConfig": sticky,
        },
    }


def _with_forward(
    actions: Sequence[ActionOutputTypeDef], forward: ActionUnionTypeDef
) -> list[ActionUnionTypeDef]:
    """The listener's default actions with the forward replaced (keeping its Order) and
    every other action sent back as DescribeListeners gave it."""
    sent: list[ActionUnionTypeDef] = []
    for action in actions:
        if action.get("Type") == "forward":
            if "Order" in action:
                forward = {**forward, "Order": action["Order"]}
            sent.append(forward)
        else:
            sent.append(_resendable(action))
    return sent


def _resendable(action: ActionOutputTypeDef) -> ActionUnionTypeDef:
    """An action as DescribeListeners gave it, in the form ModifyListener accepts: the
    OIDC client secret is never returned, so the action says to keep the existing one."""
    doc: dict[str, Any] = dict(action)
    oidc = doc.get("AuthenticateOidcConfig")
    if oidc is not None:
        oidc = {k: v for k, v in oidc.items() if k != "ClientSecret"}
        doc["AuthenticateOidcConfig"] = {**oidc, "UseExistingClientSecret": True}
    return cast("ActionUnionTypeDef", doc)
