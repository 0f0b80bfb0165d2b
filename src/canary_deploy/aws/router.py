"""The ALB listener's weighted forward action as a TrafficRouter (ModifyListener fast path)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.aws.stack import NoBaseline, StackOutputs
from canary_deploy.backend import GROUPS
from canary_deploy.errors import OperationFailed
from canary_deploy.weights import Weights

if TYPE_CHECKING:
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_elbv2.type_defs import (
        ActionOutputTypeDef,
        ActionUnionTypeDef,
        ForwardActionConfigOutputTypeDef,
        TargetGroupStickinessConfigTypeDef,
    )


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


@dataclass(frozen=True)
class ListenerState:
    """What the listener's default action says now."""

    weights: Weights
    stickiness_seconds: int | None  # None when stickiness is off


class AlbRouter:
    """Reads and writes the listener's weights; never touches the stack."""

    def __init__(
        self,
        client: ElasticLoadBalancingv2Client,
        outputs: Callable[[], StackOutputs],
        errors: ErrorScope,
    ) -> None:
        self._elbv2 = client
        self._outputs = outputs
        self._errors = errors

    def _default_action(self) -> ActionOutputTypeDef:
        out = self._outputs()
        with self._errors("read the listener"):
            listeners = self._elbv2.describe_listeners(ListenerArns=[out.listener_arn])
        actions = listeners["Listeners"][0].get("DefaultActions", [])
        forwards = [a for a in actions if a.get("Type") == "forward"]
        if not forwards:
            raise OperationFailed(
                "the listener's default action is not a forward to the target groups",
                hint="it was changed outside canary; `canary --target aws deploy` restores it",
            )
        return forwards[0]

    def listener_state(self) -> ListenerState:
        """Live weights (percent) and stickiness, read from the load balancer."""
        out = self._outputs()
        action = self._default_action()
        config: ForwardActionConfigOutputTypeDef = action.get("ForwardConfig", {})
        by_arn = {
            tg["TargetGroupArn"]: int(tg.get("Weight", 1)) for tg in config.get("TargetGroups", [])
        }
        if not by_arn and action.get("TargetGroupArn"):
            by_arn = {action["TargetGroupArn"]: 1}
        alb = [by_arn.get(out.target_group_arn(group), 0) for group in out.groups]
        sticky = config.get("TargetGroupStickinessConfig", {})
        seconds = sticky.get("DurationSeconds") if sticky.get("Enabled") else None
        return ListenerState(Weights.from_alb(*alb), seconds)

    def get_weights(self) -> Weights:
        """Read the live weights from the load balancer itself."""
        return self.listener_state().weights

    def set_weights(self, weights: Weights) -> None:
        """One ModifyListener call with every target group and the stickiness config.

        ModifyListener replaces the whole DefaultActions list, so every group is sent
        (weight 0 included) and the current stickiness is read first and sent back
        unchanged. A stack without the baseline group gets two groups.
        """
        out = self._outputs()
        if weights.baseline and not out.has_baseline:
            raise NoBaseline()
        stickiness = self.listener_state().stickiness_seconds
        sticky: TargetGroupStickinessConfigTypeDef = (
            {"Enabled": True, "DurationSeconds": stickiness} if stickiness else {"Enabled": False}
        )
        alb = dict(zip(GROUPS, to_alb(weights), strict=True))
        action: ActionUnionTypeDef = {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": out.target_group_arn(group), "Weight": alb[group]}
                    for group in out.groups
                ],
                "TargetGroupStickinessConfig": sticky,
            },
        }
        with self._errors(f"set the listener weights to {weights}"):
            self._elbv2.modify_listener(ListenerArn=out.listener_arn, DefaultActions=[action])

    def verify_weights(self, weights: Weights) -> bool:
        """True when the load balancer reports exactly these weights now."""
        return self.get_weights() == weights
