"""Tester routes as ALB listener rules (a `TesterRouter`): `http-header` conditions that
forward to one target group, evaluated before the listener's weighted default action.

Rules the tool creates carry the tag `canary-deploy:route` (its value: `header` or
`cookie`); rules without it are someone else's and never touched, though their
priorities are avoided. A route is read back from the rule itself (its condition and
its forward), so what `route list` shows is what the load balancer does. ModifyListener
(`set-weights`) changes the default action only: it never touches a rule.

A rule forwards to its group's *tester* target group: the same tasks (each ECS service
registers them in both), but a group in no weighted action whose metrics the judge never
reads, so tester requests, which are not a random sample, are never judged. Rules made
before the stack had tester groups forward to the main groups; they are still ours (listed,
deleted), and the next `deploy` moves them (`move_to_tester_groups`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.aws.outputs import StackOutputs
from canary_deploy.backend import Progress, Role
from canary_deploy.errors import CanaryError
from canary_deploy.routes import RouteKind, RouteMatch, TesterRoute, add_route, next_priority

if TYPE_CHECKING:
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_elbv2.type_defs import ActionTypeDef, RuleConditionTypeDef, RuleTypeDef

ROUTE_TAG = "canary-deploy:route"
DESCRIBE_TAGS_MAX = 20  # ARNs per DescribeTags call
_KINDS: dict[str, RouteKind] = {"header": "header", "cookie": "cookie"}


@dataclass(frozen=True)
class _Rule:
    """One of our rules as the load balancer describes it."""

    arn: str
    route: TesterRoute
    judged: bool  # it forwards to the group's main target group (made before tester groups)


class AlbRoutes:
    """The tool's listener rules on the stack's listener."""

    def __init__(
        self,
        client: ElasticLoadBalancingv2Client,
        outputs: Callable[[], StackOutputs],
        errors: ErrorScope,
    ) -> None:
        self._elbv2 = client
        self._outputs = outputs
        self._errors = errors

    def list_routes(self) -> list[TesterRoute]:
        """Our rules on the listener now, in priority order."""
        return [r.route for r in self._ours(self._rules())]

    def add_route(self, match: RouteMatch, to: Role) -> TesterRoute:
        """CreateRule at a free priority after our other rules, tagged as ours."""
        out = self._outputs()
        # NoBaseline on a stack without one, NoTesterGroups on a stack from before them.
        group_arn = out.tester_group_arn(to)
        rules = self._rules()
        ours = [r.route for r in self._ours(rules)]
        route = add_route(ours, match, to)  # a duplicate is a UsageError here
        taken = [int(r["Priority"]) for r in rules if str(r.get("Priority", "")).isdigit()]
        priority = next_priority(taken, [r.priority for r in ours])
        route = TesterRoute(priority, match, to)
        with self._errors(f"create the listener rule {route}"):
            self._elbv2.create_rule(
                ListenerArn=out.listener_arn,
                Priority=priority,
                Conditions=[_condition(match)],
                Actions=[_forward(group_arn)],
                Tags=[{"Key": ROUTE_TAG, "Value": match.kind}],
            )
        return route

    def delete_route(self, route: TesterRoute) -> None:
        """DeleteRule on our rule with this route's priority."""
        for rule in self._ours(self._rules()):
            if rule.route.priority == route.priority:
                with self._errors(f"delete the listener rule {route}"):
                    self._elbv2.delete_rule(RuleArn=rule.arn)
                return

    def delete_all(self, progress: Progress) -> None:
        """Remove every rule of ours (before the stack goes: `canary delete`). A listener
        that cannot be read is left to CloudFormation, which deletes it with its rules."""
        try:
            rules = self._ours(self._rules())
        except CanaryError as exc:
            progress.log(f"Tester routes not read ({exc.message}): they go with the listener")
            return
        for rule in rules:
            with self._errors(f"delete the listener rule {rule.route}"):
                self._elbv2.delete_rule(RuleArn=rule.arn)
            progress.log(f"Deleted tester route {rule.route}")

    def move_to_tester_groups(self, progress: Progress) -> None:
        """Point every rule of ours that forwards to a main target group at that group's
        tester group instead (ModifyRule), so its requests stop being judged: what a
        `deploy` does once the stack has tester groups. Nothing when there are none."""
        out = self._outputs()
        testers = out.tester_group_arns()
        for rule in self._ours(self._rules()):
            arn = testers.get(rule.route.to)
            if not rule.judged or arn is None:
                continue
            with self._errors(f"move the listener rule {rule.route} to its tester group"):
                self._elbv2.modify_rule(RuleArn=rule.arn, Actions=[_forward(arn)])
            progress.log(
                f"Tester route {rule.route} now forwards to the {rule.route.to} tester target "
                "group (its requests are no longer judged)"
            )

    # ---- reading

    def _rules(self) -> list[RuleTypeDef]:
        """Every non-default rule on the listener."""
        listener = self._outputs().listener_arn
        rules: list[RuleTypeDef] = []
        marker: str | None = None
        with self._errors("read the listener rules"):
            while True:
                page = (
                    self._elbv2.describe_rules(ListenerArn=listener, Marker=marker)
                    if marker
                    else self._elbv2.describe_rules(ListenerArn=listener)
                )
                rules += [r for r in page.get("Rules", []) if not r.get("IsDefault")]
                marker = page.get("NextMarker")
                if not marker:
                    return rules

    def _ours(self, rules: Sequence[RuleTypeDef]) -> list[_Rule]:
        """The rules tagged as ours, read back into routes, in priority order."""
        kinds = self._route_tags([r["RuleArn"] for r in rules if r.get("RuleArn")])
        out = self._outputs()
        main = {out.target_group_arn(group): group for group in out.groups}
        by_arn = {**main, **{arn: group for group, arn in out.tester_group_arns().items()}}
        ours = []
        for rule in rules:
            kind = kinds.get(rule.get("RuleArn", ""))
            route = None if kind is None else _route_of(rule, kind, by_arn)
            if route is not None:
                judged = main.get(_forward_arns(_forward_of(rule))[0]) is not None
                ours.append(_Rule(rule["RuleArn"], route, judged))
        return sorted(ours, key=lambda r: r.route.priority)

    def _route_tags(self, arns: list[str]) -> dict[str, RouteKind]:
        kinds: dict[str, RouteKind] = {}
        for chunk in _chunks(arns, DESCRIBE_TAGS_MAX):
            with self._errors("read the listener rules' tags"):
                described = self._elbv2.describe_tags(ResourceArns=chunk)
            for doc in described.get("TagDescriptions", []):
                tags = {t["Key"]: t.get("Value", "") for t in doc.get("Tags", [])}
                kind = _KINDS.get(tags.get(ROUTE_TAG, ""))
                if kind is not None:
                    kinds[doc["ResourceArn"]] = kind
        return kinds


def _forward(group_arn: str) -> ActionTypeDef:
    """A rule's action: everything to one target group, no stickiness."""
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": group_arn, "Weight": 1}],
            "TargetGroupStickinessConfig": {"Enabled": False},
        },
    }


def _forward_of(rule: RuleTypeDef) -> Any:
    """The rule's one forward action (call only on a rule `_route_of` read)."""
    return next(a for a in rule["Actions"] if a.get("Type") == "forward")


def _condition(match: RouteMatch) -> RuleConditionTypeDef:
    return {
        "Field": "http-header",
        "HttpHeaderConfig": {"HttpHeaderName": match.header_name, "Values": list(match.patterns())},
    }


def _route_of(rule: RuleTypeDef, kind: RouteKind, groups: dict[str, Role]) -> TesterRoute | None:
    """The route a rule of ours holds, or None when it was changed beyond one (then it is
    left alone, as a rule that is not ours)."""
    try:
        priority = int(rule["Priority"])
        (condition,) = rule["Conditions"]
        header = condition["HttpHeaderConfig"]
        values: list[str] = list(header["Values"])
        (action,) = [a for a in rule["Actions"] if a.get("Type") == "forward"]
        arns = _forward_arns(action)
    except (KeyError, ValueError, TypeError):
        return None
    if len(arns) != 1 or arns[0] not in groups:
        return None
    if kind == "header":
        spec = f"{header['HttpHeaderName']}={values[0]}" if len(values) == 1 else ""
    else:
        spec = values[0] if values else ""
    try:
        match = RouteMatch.parse(kind, spec)
    except CanaryError:
        return None
    if list(match.patterns()) != values:
        return None
    return TesterRoute(priority, match, groups[arns[0]])


def _forward_arns(action: Any) -> list[str]:
    config = action.get("ForwardConfig") or {}
    arns = [str(tg["TargetGroupArn"]) for tg in config.get("TargetGroups", [])]
    if not arns and action.get("TargetGroupArn"):
        arns = [str(action["TargetGroupArn"])]
    return arns


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
