"""The one stickiness rule both targets apply: on only while no binding can outlive its
group's weight."""

from __future__ import annotations

import itertools

import pytest

from canary_deploy.backend import GROUPS
from canary_deploy.stickiness import listener_stickiness, stickiness_allowed
from canary_deploy.weights import Weights

EVERY_SPLIT = [
    Weights(s, c, 100 - s - c)
    for s, c in itertools.product(range(0, 101, 5), repeat=2)
    if s + c <= 100
]


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        (Weights(95, 5), 900),  # a canary step: sessions stay on their version
        (Weights(50, 50), 900),
        (Weights(100, 0), None),  # rollback: bound clients must leave the canary now
        (Weights(0, 100), None),  # promotion: bound clients must leave stable
        (Weights(90, 5, 5), None),  # baseline steps bind nobody (see the docstring)
        (Weights(0, 50, 50), None),
        (Weights(25, 75), 900),  # the soak step after the baseline steps
    ],
)
def test_stickiness_is_on_only_while_stable_and_canary_both_have_weight(
    weights: Weights, expected: int | None
) -> None:
    assert listener_stickiness(900, weights) == expected


def test_not_configured_is_never_on() -> None:
    assert all(listener_stickiness(None, w) is None for w in EVERY_SPLIT)


def test_while_on_every_group_a_cookie_can_name_has_weight() -> None:
    """The invariant the rule exists for: a cookie is issued only for a group that gets
    requests while stickiness is on, and whenever it is on, every such group has weight."""
    on = [w for w in EVERY_SPLIT if stickiness_allowed(w)]
    bindable = {g for w in on for g in GROUPS if w.of(g) > 0}
    assert bindable == {"stable", "canary"}
    assert all(w.of(g) > 0 for w in on for g in bindable)
