"""Target health of the stack's target groups (DescribeTargetHealth), for `status` and for
the rollout's health gate."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.aws.outputs import StackOutputs
from canary_deploy.backend import Role, TargetGroupStatus

if TYPE_CHECKING:
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client

TARGET_STATES = ("healthy", "unhealthy", "initial", "draining", "unused")


def target_group_status(
    elbv2: ElasticLoadBalancingv2Client, arn: str, errors: ErrorScope
) -> TargetGroupStatus:
    """Targets of one group counted by health state (AWS's own state names)."""
    with errors("read target health"):
        targets = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    counts = dict.fromkeys(TARGET_STATES, 0)
    for target in targets:
        state = str(target.get("TargetHealth", {}).get("State", "unused"))
        if state in counts:
            counts[state] += 1
    return TargetGroupStatus(name=arn.split("/")[-2] if "/" in arn else arn, **counts)


class TargetHealth:
    """The stack's target groups' health, one DescribeTargetHealth per group asked."""

    def __init__(
        self,
        client: ElasticLoadBalancingv2Client,
        outputs: Callable[[], StackOutputs],
        errors: ErrorScope,
    ) -> None:
        self._elbv2 = client
        self._outputs = outputs
        self._errors = errors

    def group(self, role: Role) -> TargetGroupStatus:
        return target_group_status(
            self._elbv2, self._outputs().target_group_arn(role), self._errors
        )

    def healthy(self, roles: Collection[Role]) -> dict[Role, int]:
        """Healthy targets per group; a group the stack does not have counts 0."""
        groups = self._outputs().groups
        return {v: self.group(v).healthy if v in groups else 0 for v in roles}
