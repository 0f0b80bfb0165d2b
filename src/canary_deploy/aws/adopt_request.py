"""What the user names to `canary adopt`, and what those names alone show is wrong, said
before any AWS call."""

from __future__ import annotations

from dataclasses import dataclass

from canary_deploy.backend import Role
from canary_deploy.errors import UsageError


@dataclass(frozen=True)
class AdoptRequest:
    """What the user names; everything else is found from it."""

    cluster: str
    stable_service: str
    canary_service: str
    listener_arn: str | None = None
    rule_arn: str | None = None
    baseline_service: str | None = None
    name: str | None = None  # default: the stable service's name
    stickiness_s: int | None = None  # None: as the forward has it; 0: off

    @property
    def service_names(self) -> dict[Role, str]:
        """Each role's ECS service (baseline only when named)."""
        names: dict[Role, str] = {"stable": self.stable_service, "canary": self.canary_service}
        if self.baseline_service:
            names["baseline"] = self.baseline_service
        return names


def listener_of_rule(rule_arn: str) -> str:
    """The listener a rule belongs to, from the rule's ARN.

    >>> listener_of_rule("arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/a/b/c/d")
    'arn:aws:elasticloadbalancing:us-east-1:1:listener/app/a/b/c'
    """
    head, _, path = rule_arn.partition(":listener-rule/")
    if not path or "/" not in path:
        raise UsageError(
            f"{rule_arn} is not a listener rule ARN",
            hint="copy it from `aws elbv2 describe-rules --listener-arn ...` (RuleArn)",
        )
    return f"{head}:listener/{path.rsplit('/', 1)[0]}"


def check_request(request: AdoptRequest, region: str) -> None:
    """What the names alone show is wrong, said before any AWS call: both --listener and
    --rule, a name or a rule's ARN where the listener's ARN goes, an ARN of another
    region, one service in two roles.

    >>> check_request(AdoptRequest("c", "s", "k", "shop"), "us-east-1")
    Traceback (most recent call last):
    ...
    canary_deploy.errors.UsageError: --listener takes the listener's ARN, not shop
    """
    if request.listener_arn and request.rule_arn:
        raise UsageError(
            "give --listener or --rule, not both: the split is either the listener's "
            "default action or one rule's forward",
            hint="--rule alone adopts the rule (its listener is found from its ARN)",
        )
    for flag, arn in (("--listener", request.listener_arn), ("--rule", request.rule_arn)):
        if not arn:
            continue
        if flag == "--listener" and ":listener-rule/" in arn:
            raise UsageError(
                f"{arn} is a listener rule's ARN", hint=f"adopt a rule with --rule {arn}"
            )
        what = "listener" if flag == "--listener" else "listener rule"
        if not arn.startswith("arn:") or arn.count(":") < 5:
            raise UsageError(
                f"{flag} takes the {what}'s ARN, not {arn}",
                hint="e.g. `aws elbv2 describe-listeners --load-balancer-arn ARN` "
                "(ListenerArn) or `aws elbv2 describe-rules --listener-arn ARN` (RuleArn)",
            )
        arn_region = arn.split(":")[3]
        if arn_region and arn_region != region:
            raise UsageError(
                f"the {what} {arn} is in region {arn_region}, and canary works in {region}",
                hint=f"pass --region {arn_region} (or set AWS_REGION={arn_region})",
            )
    named = list(request.service_names.items())
    for i, (role, service) in enumerate(named):
        for other, same in named[i + 1 :]:
            if service == same:
                raise UsageError(
                    f"the {role} and the {other} service are the same service {service}",
                    hint="each role needs its own ECS service, registered in its own "
                    "target group of the forward",
                )
