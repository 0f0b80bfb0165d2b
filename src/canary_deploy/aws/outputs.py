"""What a stack's Outputs name: the handles of the listener, target groups, cluster and
services that every AWS component needs (an adopted setup gives the same handles)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from canary_deploy.backend import Role
from canary_deploy.errors import OperationFailed


@dataclass(frozen=True)
class StackOutputs:
    """What the stack's Outputs name, the handles every other component needs."""

    alb_dns: str
    listener_arn: str
    load_balancer_arn: str
    target_group_stable_arn: str
    target_group_canary_arn: str
    cluster_name: str
    service_stable_name: str
    service_canary_name: str
    # A stack created before the baseline group lacks these outputs; it keeps working with
    # two groups, and the next `deploy` adds them.
    target_group_baseline_arn: str | None = None
    service_baseline_name: str | None = None
    # Where tester routes forward: the same tasks as the main groups, in no weighted action
    # and never read by the judge. A stack created before them lacks these outputs.
    tester_target_group_stable_arn: str | None = None
    tester_target_group_canary_arn: str | None = None
    tester_target_group_baseline_arn: str | None = None
    # An adopted setup whose weighted forward is a listener rule's action (`canary adopt
    # --rule`); None: the listener's default action, as on our stack.
    rule_arn: str | None = None

    @property
    def has_baseline(self) -> bool:
        """True when the stack has the baseline target group and service."""
        return bool(self.target_group_baseline_arn and self.service_baseline_name)

    @property
    def groups(self) -> tuple[Role, ...]:
        """The target groups this stack has, stable first."""
        return ("stable", "canary", "baseline") if self.has_baseline else ("stable", "canary")

    def target_group_arn(self, group: Role) -> str:
        """The ARN of one group's target group (an error on a stack without it)."""
        return _of_group(
            group,
            self.target_group_stable_arn,
            self.target_group_canary_arn,
            self.target_group_baseline_arn,
        )

    def tester_group_arn(self, group: Role) -> str:
        """The ARN of the tester target group of one group's tasks (an error on a stack
        without it: tester traffic must never go to a group the judge reads)."""
        self.target_group_arn(group)  # NoBaseline first on a stack without the baseline
        arn = self.tester_group_arns().get(group)
        if arn is None:
            raise NoTesterGroups()
        return arn

    def tester_group_arns(self) -> dict[Role, str]:
        """The tester target groups this stack has, by the group whose tasks they hold."""
        arns: dict[Role, str | None] = {
            "stable": self.tester_target_group_stable_arn,
            "canary": self.tester_target_group_canary_arn,
            "baseline": self.tester_target_group_baseline_arn,
        }
        return {group: arn for group, arn in arns.items() if arn and group in self.groups}

    def service_name(self, group: Role) -> str:
        """The name of one group's ECS service (an error on a stack without it)."""
        return _of_group(
            group, self.service_stable_name, self.service_canary_name, self.service_baseline_name
        )

    @classmethod
    def parse(cls, outputs: Mapping[str, str], stack_name: str) -> StackOutputs:
        keys = {
            "alb_dns": "ALBDNS",
            "listener_arn": "ListenerArn",
            "load_balancer_arn": "LoadBalancerArn",
            "target_group_stable_arn": "TargetGroupStableArn",
            "target_group_canary_arn": "TargetGroupCanaryArn",
            "cluster_name": "ClusterName",
            "service_stable_name": "ServiceStableName",
            "service_canary_name": "ServiceCanaryName",
        }
        missing = [key for key in keys.values() if not outputs.get(key)]
        if missing:
            raise OperationFailed(
                f"stack {stack_name} lacks the outputs {', '.join(missing)}: "
                "it was not created by canary-deploy (or by an older version)",
                hint="run `canary --target aws deploy` to update it with the current template",
            )
        return cls(
            **{field: outputs[key] for field, key in keys.items()},
            target_group_baseline_arn=outputs.get("TargetGroupBaselineArn") or None,
            service_baseline_name=outputs.get("ServiceBaselineName") or None,
            tester_target_group_stable_arn=outputs.get("TesterTargetGroupStableArn") or None,
            tester_target_group_canary_arn=outputs.get("TesterTargetGroupCanaryArn") or None,
            tester_target_group_baseline_arn=outputs.get("TesterTargetGroupBaselineArn") or None,
        )


def _of_group(group: Role, stable: str, canary: str, baseline: str | None) -> str:
    """One group's value of a per-group output; only the baseline's can be missing."""
    value = {"stable": stable, "canary": canary, "baseline": baseline}[group]
    if not value:
        raise NoBaseline()
    return value


class NoBaseline(OperationFailed):
    """The stack predates the baseline target group and service."""

    def __init__(self) -> None:
        super().__init__(
            "the stack has no baseline target group (it was created by an older canary-deploy)",
            hint="run `canary --target aws deploy` once to add it (live weights are kept)",
        )


class NoTesterGroups(OperationFailed):
    """The stack predates the tester target groups: a tester route there would forward to
    a group the judge reads, so its requests would be judged."""

    def __init__(self) -> None:
        super().__init__(
            "the stack has no tester target groups (it was created by an older "
            "canary-deploy): a tester route would send its requests to the groups the judge "
            "reads",
            hint="run `canary --target aws deploy` once to add them (live weights are kept; "
            "existing tester routes move to them)",
        )
