"""Target-group choice by weight, stickiness cookies and target choice inside a group."""

from __future__ import annotations

import time

import pytest

from canary_deploy.balancer.config import HealthCheckConfig
from canary_deploy.balancer.health import apply_result
from canary_deploy.balancer.routing import Router, SmoothWeighted, Stickiness, Target, TargetGroup
from canary_deploy.weights import Weights


@pytest.mark.parametrize("canary", range(101))
def test_any_100_consecutive_picks_hold_the_canary_weight_within_one(canary: int) -> None:
    chooser = SmoothWeighted(Weights(100 - canary, canary))
    picks = [chooser.next() == "canary" for _ in range(300)]
    for start in range(200):
        assert abs(sum(picks[start : start + 100]) - canary) <= 1
    if canary == 0:
        assert not any(picks)
    if canary == 100:
        assert all(picks)


def test_new_weights_apply_to_the_very_next_pick() -> None:
    chooser = SmoothWeighted(Weights(100, 0))
    assert [chooser.next() for _ in range(3)] == ["stable"] * 3
    chooser.set(Weights(0, 100))
    assert chooser.next() == "canary"


def _group(*states: str, algorithm: str = "round_robin") -> TargetGroup:
    group = TargetGroup("stable", algorithm)  # type: ignore[arg-type]
    for i, state in enumerate(states):
        target = Target(f"t{i}", "127.0.0.1", 9000 + i)
        target.state = state  # type: ignore[assignment]
        group.targets[target.target_id] = target
    group.refresh()
    return group


def test_round_robin_uses_only_healthy_targets() -> None:
    group = _group("healthy", "unhealthy", "healthy", "initial", "draining")
    assert [group.pick().target_id for _ in range(4)] == ["t0", "t2", "t0", "t2"]  # type: ignore[union-attr]


def test_group_fails_open_when_no_target_is_healthy() -> None:
    group = _group("unhealthy", "unhealthy", "draining")
    assert {group.pick().target_id for _ in range(4)} == {"t0", "t1"}  # type: ignore[union-attr]


def test_empty_group_gives_no_target() -> None:
    assert _group().pick() is None
    assert _group("draining").pick() is None


def test_least_outstanding_requests_prefers_the_idlest_target() -> None:
    group = _group("healthy", "healthy", "healthy", algorithm="least_outstanding_requests")
    group.targets["t0"].outstanding = 3
    group.targets["t1"].outstanding = 1
    group.targets["t2"].outstanding = 2
    assert group.pick().target_id == "t1"  # type: ignore[union-attr]


def test_sticky_cookie_binds_to_its_group_unless_that_group_has_weight_zero() -> None:
    sticky = Stickiness(3600)
    header = sticky.set_cookie_header("canary", time.monotonic())
    assert header.startswith(b"Set-Cookie: AWSALBTG=") and b"Path=/" in header
    token = header.split(b"=", 1)[1].split(b";", 1)[0]
    cookie = b"session=1; AWSALBTG=" + token + b"; other=2"
    assert sticky.version_from_cookie(cookie) == "canary"
    assert sticky.version_from_cookie(b"XAWSALBTG=" + token) is None
    assert sticky.version_from_cookie(b"AWSALBTG=forged") is None

    router = Router(Weights(99, 1), "round_robin")
    for version in ("stable", "canary"):
        router.groups[version].targets["t"] = Target("t", "127.0.0.1", 1)
        router.groups[version].refresh()
    assert {router.choose("canary")[0] for _ in range(50)} == {"canary"}
    router.chooser.set(Weights(100, 0))
    assert {router.choose("canary")[0] for _ in range(50)} == {"stable"}


def _state(target: Target) -> str:
    return target.state


def test_health_states_follow_alb() -> None:
    config = HealthCheckConfig(healthy_threshold=3, unhealthy_threshold=2)
    target = Target("t", "127.0.0.1", 1)
    assert _state(target) == "initial"  # via a call: mypy would not see apply_result change it
    apply_result(target, True, None, config)
    assert _state(target) == "healthy"  # one pass is enough for a new target
    apply_result(target, False, "Target.Timeout", config)
    assert _state(target) == "healthy"
    apply_result(target, False, "Target.Timeout", config)
    assert (target.state, target.reason) == ("unhealthy", "Target.Timeout")
    apply_result(target, True, None, config)
    apply_result(target, True, None, config)
    assert _state(target) == "unhealthy"
    apply_result(target, True, None, config)
    assert _state(target) == "healthy"


def test_the_split_restarts_its_cycle_at_every_weight_change() -> None:
    chooser = SmoothWeighted(Weights(80, 20))
    first = [chooser.next() for _ in range(7)]
    chooser.set(Weights(80, 20))
    assert [chooser.next() for _ in range(7)] == first
    assert [chooser.next() for _ in range(100)].count("canary") == 20
