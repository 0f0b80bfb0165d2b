"""Reading tester routes back from listener rules: only rules still in the shape the tool
created are ours; one changed by hand is left alone (neither listed nor deleted)."""

from __future__ import annotations

from typing import Any

import pytest

from canary_deploy.aws.outputs import NoBaseline, NoTesterGroups
from canary_deploy.aws.routes import _route_of
from canary_deploy.routes import RouteMatch, cookie_patterns
from tests.aws.stubs import OUTPUTS, OUTPUTS_NO_TESTER_GROUPS, OUTPUTS_TWO_GROUPS

GROUPS = {"arn:tg/stable": "stable", "arn:tg/canary": "canary"}


def rule(name: str, values: list[str], arns: list[str], priority: str = "4") -> Any:
    return {
        "RuleArn": "arn:rule/1",
        "Priority": priority,
        "Conditions": [
            {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": name, "Values": values}}
        ],
        "Actions": [
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": a, "Weight": 1} for a in arns]
                },
            }
        ],
    }


def test_a_header_rule_reads_back_as_its_route() -> None:
    route = _route_of(rule("X-Canary", ["v?-*"], ["arn:tg/canary"]), "header", GROUPS)  # type: ignore[arg-type]
    assert route is not None
    assert (route.priority, route.match, route.to) == (
        4,
        RouteMatch("header", "X-Canary", "v?-*"),
        "canary",
    )


def test_a_cookie_rule_reads_back_as_its_route() -> None:
    doc = rule("Cookie", list(cookie_patterns("tester", "yes")), ["arn:tg/stable"])
    route = _route_of(doc, "cookie", GROUPS)  # type: ignore[arg-type]
    assert route is not None and str(route) == "#4 --cookie tester=yes -> stable"


@pytest.mark.parametrize(
    "doc",
    [
        rule("X-Canary", ["a", "b"], ["arn:tg/canary"]),  # a value added by hand
        rule("X-Canary", ["a"], ["arn:tg/canary", "arn:tg/stable"]),  # a weighted forward
        rule("X-Canary", ["a"], ["arn:tg/other"]),  # another stack's group
        rule("Host", ["a"], ["arn:tg/canary"]),
        rule("Cookie", ["tester=yes"], ["arn:tg/canary"]),  # cookie placements removed
        rule("X-Canary", ["a"], ["arn:tg/canary"], priority="default"),
    ],
)
def test_a_rule_changed_beyond_a_route_is_not_ours(doc: Any) -> None:
    kind = (
        "cookie"
        if doc["Conditions"][0]["HttpHeaderConfig"]["HttpHeaderName"] == "Cookie"
        else "header"
    )
    assert _route_of(doc, kind, GROUPS) is None  # type: ignore[arg-type]


def test_a_route_goes_to_its_groups_tester_group_and_an_older_stack_says_what_is_missing() -> None:
    assert OUTPUTS.tester_group_arn("canary") == OUTPUTS.tester_target_group_canary_arn
    assert OUTPUTS.tester_group_arn("canary") != OUTPUTS.target_group_arn("canary")
    with pytest.raises(NoTesterGroups) as refused:
        OUTPUTS_NO_TESTER_GROUPS.tester_group_arn("canary")
    assert refused.value.hint is not None and "deploy" in refused.value.hint
    with pytest.raises(NoBaseline):  # the group itself is missing: that error first
        OUTPUTS_TWO_GROUPS.tester_group_arn("baseline")
