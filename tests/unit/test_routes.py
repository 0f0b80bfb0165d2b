"""Tester routes as values: what `--header`/`--cookie`/`--to` accept, priorities, lookup."""

from __future__ import annotations

import pytest

from canary_deploy.errors import UsageError
from canary_deploy.routes import (
    RouteMatch,
    add_route,
    cookie_patterns,
    find_route,
    group_named,
    next_priority,
    routes_from_list,
)
from canary_deploy.routes import TesterRoute as Route


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        ("header", "X-Canary", "--header takes NAME=VALUE, got 'X-Canary'"),
        ("header", "=always", "--header takes NAME=VALUE"),
        ("header", "X Canary=1", "not a valid header name"),
        ("header", "X-" + "a" * 40 + "=1", "not a valid header name"),
        ("header", "X-Canary=", "not a header value ALB can match"),
        ("header", "X-Canary=" + "a" * 129, "not a header value ALB can match"),
        ("header", "X-Canary=caf\u00e9", "not a header value ALB can match"),
        ("header", "Host=a", "cannot match the Host header"),
        ("header", "X-Forwarded-For=1.2.3.4", "cannot match the X-Forwarded-For header"),
        ("header", "Cookie=a=1", "route a cookie with --cookie"),
        ("cookie", "tester", "--cookie takes NAME=VALUE"),
        ("cookie", "tester=", "not a cookie value"),
        ("cookie", "tester=a b", "not a cookie value"),
        ("cookie", "tester=a*", "not a cookie value"),  # matched exactly: no wildcards
        ("cookie", "t=" + "a" * 124, "too long for an ALB condition"),
    ],
)
def test_a_bad_route_condition_is_a_usage_error(kind: str, spec: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        RouteMatch.parse(kind, spec)  # type: ignore[arg-type]
    assert message in caught.value.message
    assert caught.value.exit_code == 2


def test_a_value_may_hold_spaces_equals_signs_and_alb_wildcards() -> None:
    match = RouteMatch.parse("header", "X-Build = v2 = * beta?")
    assert (match.name, match.value, match.patterns()) == (
        "X-Build",
        "v2 = * beta?",
        ("v2 = * beta?",),
    )


def test_a_cookie_route_is_an_alb_header_condition_on_cookie() -> None:
    match = RouteMatch.parse("cookie", "tester=yes")
    assert match.header_name == "Cookie"
    assert match.patterns() == cookie_patterns("tester", "yes")
    assert len(match.patterns()) <= 5 and sum(p.count("*") for p in match.patterns()) <= 5


@pytest.mark.parametrize("name", ["stable", "canary", "baseline", " Canary "])
def test_to_names_a_target_group(name: str) -> None:
    assert group_named(name) == name.strip().lower()


def test_an_unknown_to_names_the_choices() -> None:
    with pytest.raises(UsageError) as caught:
        group_named("prod")
    assert caught.value.hint == "use --to stable, canary or baseline"


def header(spec: str) -> RouteMatch:
    return RouteMatch.parse("header", spec)


def test_a_new_route_goes_after_ours_and_skips_priorities_taken_by_other_rules() -> None:
    assert next_priority([], []) == 1
    assert next_priority([1, 2, 3], [1, 3]) == 4
    assert next_priority([2, 3, 7], []) == 1
    assert next_priority([5, 6], [4]) == 7
    with pytest.raises(UsageError):
        next_priority([50_000], [50_000])


def test_the_same_condition_in_any_case_is_a_duplicate() -> None:
    first = add_route([], header("X-Canary=always"), "canary")
    assert first.priority == 1
    with pytest.raises(UsageError) as caught:
        add_route([first], header("x-canary=ALWAYS"), "canary")
    assert "already exists (priority 1)" in caught.value.message
    assert caught.value.hint == "`canary route delete 1` first to change it"
    with pytest.raises(UsageError) as caught:
        add_route([first], header("X-Canary=always"), "stable")
    assert "already routes to canary" in caught.value.message
    # A cookie with the same name and value is another condition.
    cookie = add_route([first], RouteMatch.parse("cookie", "X-Canary=always"), "stable")
    assert cookie.priority == 2


def test_a_route_is_found_by_id_or_by_its_condition() -> None:
    routes = [Route(1, header("X-A=1"), "canary"), Route(4, header("X-B=2"), "stable")]
    assert find_route(routes, "4") is routes[1]
    assert find_route(routes, "#1") is routes[0]
    assert find_route(routes, header("x-b=2")) is routes[1]
    with pytest.raises(UsageError) as caught:
        find_route(routes, "2")
    assert caught.value.message == "no tester route '2'"
    assert "#1 --header X-A=1 -> canary" in (caught.value.hint or "")


def test_routes_round_trip_through_json_in_priority_order() -> None:
    routes = [
        Route(3, header("X-A=v?"), "baseline"),
        Route(1, RouteMatch.parse("cookie", "t=1"), "canary"),
    ]
    assert routes_from_list([r.to_dict() for r in routes]) == sorted(
        routes, key=lambda r: r.priority
    )
    with pytest.raises(UsageError):
        routes_from_list([routes[0].to_dict(), routes[0].to_dict()])  # same priority
