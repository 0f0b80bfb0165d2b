"""Target-group choice by weight, stickiness cookies and target choice inside a group."""

from __future__ import annotations

import itertools
import time
from email.utils import parsedate_to_datetime

import pytest

from canary_deploy.balancer.config import HealthCheckConfig
from canary_deploy.balancer.health import apply_result
from canary_deploy.balancer.routing import (
    RegisteredTarget,
    Router,
    SmoothWeighted,
    Stickiness,
    TargetGroup,
)
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
        target = RegisteredTarget(f"t{i}", "127.0.0.1", 9000 + i)
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


def test_sticky_cookie_binds_to_its_group_even_at_weight_zero_as_on_alb() -> None:
    sticky = Stickiness(3600)
    header = sticky.set_cookie_header("canary", time.monotonic())
    assert header.startswith(b"Set-Cookie: AWSALBTG=") and b"Path=/" in header
    token = header.split(b"=", 1)[1].split(b";", 1)[0]
    cookie = b"session=1; AWSALBTG=" + token + b"; other=2"
    assert sticky.version_from_cookie(cookie) == "canary"
    assert sticky.version_from_cookie(b"XAWSALBTG=" + token) is None
    assert sticky.version_from_cookie(b"AWSALBTG=forged") is None

    router = Router(Weights(99, 1), "round_robin")
    for role in ("stable", "canary"):
        router.groups[role].targets["t"] = RegisteredTarget("t", "127.0.0.1", 1)
        router.groups[role].refresh()
    assert {router.choose("canary")[0] for _ in range(50)} == {"canary"}
    # ALB's precedence: the cookie beats the weight. Only turning stickiness off (no
    # binding read, see Stickiness.set_duration) or the cookie's expiry moves the client.
    router.chooser.set(Weights(100, 0))
    assert {router.choose("canary")[0] for _ in range(50)} == {"canary"}
    assert {router.choose(None)[0] for _ in range(50)} == {"stable"}


def test_stickiness_turned_off_reads_no_binding_and_issues_no_cookie() -> None:
    sticky = Stickiness(3600)
    now = time.monotonic()
    token = sticky.set_cookie_header("canary", now).split(b"=", 1)[1].split(b";", 1)[0]
    sticky.set_duration(None)
    assert sticky.duration_s is None
    assert sticky.version_from_cookie(b"AWSALBTG=" + token) is None
    assert sticky.set_cookie_header("canary", now) == b""
    assert sticky.set_cookie_header("canary", now + 5) == b""


def test_stickiness_turned_on_again_binds_with_its_new_duration() -> None:
    sticky = Stickiness(3600)
    now = time.monotonic()
    sticky.set_duration(None)
    sticky.set_duration(600)
    header = sticky.set_cookie_header("canary", now)
    token = header.split(b"=", 1)[1].split(b";", 1)[0]
    assert sticky.version_from_cookie(b"AWSALBTG=" + token) == "canary"  # old cookies too
    expires = header.split(b"Expires=", 1)[1].split(b";", 1)[0].decode()
    left = parsedate_to_datetime(expires).timestamp() - time.time()
    assert 598 <= left <= 601


def _state(target: RegisteredTarget) -> str:
    return target.state


def test_health_states_follow_alb() -> None:
    config = HealthCheckConfig(healthy_threshold=3, unhealthy_threshold=2)
    target = RegisteredTarget("t", "127.0.0.1", 1)
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


def _triples() -> list[tuple[int, int, int]]:
    """Every split in steps of 1 for the canary and baseline up to 50, plus edges."""
    out = [(100 - c - b, c, b) for c in range(51) for b in range(0, 51 - c // 2) if c + b <= 100]
    out += [(0, 100, 0), (0, 0, 100), (0, 50, 50), (1, 1, 98), (33, 33, 34)]
    return out


def test_any_100_consecutive_picks_hold_all_three_weights_exactly() -> None:
    triples = _triples()
    assert len(triples) > 1500
    for stable, canary, baseline in triples:
        chooser = SmoothWeighted(Weights(stable, canary, baseline))
        picks = [chooser.next() for _ in range(300)]
        for start in range(201):
            window = picks[start : start + 100]
            assert (
                window.count("stable"),
                window.count("canary"),
                window.count("baseline"),
            ) == (stable, canary, baseline), (stable, canary, baseline, start)


def test_canary_and_baseline_at_equal_weight_alternate_evenly() -> None:
    # Like for like: at 90/5/5 neither group gets its picks in a burst, nor before the other.
    picks = [SmoothWeighted(Weights(90, 5, 5)).schedule[i] for i in range(100)]
    canary_at = [i for i, g in enumerate(picks) if g == "canary"]
    baseline_at = [i for i, g in enumerate(picks) if g == "baseline"]
    for picks_at in (canary_at, baseline_at):
        assert [b - a for a, b in itertools.pairwise(picks_at)] == [20] * 4
    # Interleaved: between two canary picks there is exactly one baseline pick.
    assert all(c < b < c + 20 for c, b in zip(canary_at, baseline_at, strict=True))


def _router(weights: Weights) -> Router:
    router = Router(weights, "round_robin")
    for role in ("stable", "canary", "baseline"):
        router.groups[role].targets["t"] = RegisteredTarget("t", "127.0.0.1", 1)  # type: ignore[index]
        router.groups[role].refresh()  # type: ignore[index]
    return router


def test_sticky_cookie_binds_to_the_baseline_while_it_has_targets() -> None:
    sticky = Stickiness(3600)
    header = sticky.set_cookie_header("baseline", time.monotonic())
    token = header.split(b"=", 1)[1].split(b";", 1)[0]
    assert sticky.version_from_cookie(b"AWSALBTG=" + token) == "baseline"
    tokens = {
        sticky.set_cookie_header(v, time.monotonic()).split(b";")[0]  # type: ignore[arg-type]
        for v in ("stable", "canary", "baseline")
    }
    assert len(tokens) == 3, "each group has its own token"

    router = _router(Weights(90, 5, 5))
    assert {router.choose("baseline")[0] for _ in range(50)} == {"baseline"}
    router.chooser.set(Weights(95, 5))  # the rollout ended: baseline weight 0
    assert {router.choose("baseline")[0] for _ in range(50)} == {"baseline"}  # as on ALB
    router.chooser.set(Weights(90, 5, 5))
    del router.groups["baseline"].targets["t"]
    router.groups["baseline"].refresh()
    picks = [router.choose("baseline") for _ in range(100)]
    # Without targets the binding is not honoured; the schedule still sends the
    # baseline its 5% (and the balancer answers those 503, as ALB does).
    assert [v for v, _ in picks].count("baseline") == 5


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _healthy(group: TargetGroup, target_id: str) -> RegisteredTarget:
    target = RegisteredTarget(target_id, "127.0.0.1", 1)
    group.register(target)
    target.state = "healthy"
    group.health_changed(target)
    return target


def _shares(group: TargetGroup, n: int = 10_000) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _ in range(n):
        picked = group.pick()
        assert picked is not None
        counts[picked.target_id] = counts.get(picked.target_id, 0) + 1
    return counts


def test_slow_start_ramps_a_new_targets_share_linearly_then_ends() -> None:
    clock = _Clock()
    group = TargetGroup("canary", "round_robin", slow_start_s=100, clock=clock)
    old = _healthy(group, "old")
    new = _healthy(group, "new")
    assert old.slow_start_since is None and new.slow_start_since == clock.now
    assert group.ramping
    share = _shares(group)
    assert share["new"] < 200  # ~1% of a full share at first: 1/101 of the picks
    for elapsed, full_share in ((25, 0.25), (50, 0.5), (90, 0.9)):
        clock.now = 1000.0 + elapsed
        group.refresh()
        share = _shares(group)
        # new's weight is `full_share` of old's: its fraction of the picks follows.
        expected = full_share / (1 + full_share)
        assert share["new"] / 10_000 == pytest.approx(expected, abs=0.01), elapsed
    clock.now = 1100.0
    group.refresh()
    assert new.slow_start_since is None and not group.ramping
    assert _shares(group, 1000) == {"old": 500, "new": 500}
    assert group.pool == [old, new], "after slow start, picking is the plain round robin"


def test_slow_start_entry_and_exit_follow_alb() -> None:
    clock = _Clock()
    group = TargetGroup("baseline", "round_robin", slow_start_s=60, clock=clock)
    # Registered together into an empty group (a first deployment): no slow start,
    # even though the second becomes healthy after the first.
    first = RegisteredTarget("a", "127.0.0.1", 1)
    second = RegisteredTarget("b", "127.0.0.1", 2)
    group.register(first)
    group.register(second)
    for target in (first, second):
        target.state = "healthy"
        group.health_changed(target)
    assert first.slow_start_since is None and second.slow_start_since is None

    # A later target joins settled peers: it starts slowly.
    late = _healthy(group, "c")
    assert late.slow_start_since == clock.now
    # Unhealthy: it leaves slow start at once...
    clock.now += 10
    late.state = "unhealthy"
    group.health_changed(late)
    assert late.slow_start_since is None and not group.ramping
    # ...and enters it again, from zero, when healthy again.
    clock.now += 5
    late.state = "healthy"
    group.health_changed(late)
    assert late.slow_start_since == clock.now
    # Draining (deregistration) ends it too.
    late.state = "draining"
    group.health_changed(late)
    assert late.slow_start_since is None

    # No settled peer (the only other healthy target is itself ramping): no slow start.
    solo = TargetGroup("canary", "round_robin", slow_start_s=60, clock=clock)
    only = _healthy(solo, "x")
    ramping = _healthy(solo, "y")
    assert ramping.slow_start_since is not None
    only.state = "unhealthy"
    solo.health_changed(only)
    third = _healthy(solo, "z")
    assert third.slow_start_since is None

    # Slow start off: nobody ramps; switching it off ends every ramp.
    off = TargetGroup("stable", "round_robin", clock=clock)
    _healthy(off, "p")
    assert _healthy(off, "q").slow_start_since is None
    ramping_group = TargetGroup("stable", "round_robin", slow_start_s=60, clock=clock)
    _healthy(ramping_group, "p")
    ramper = _healthy(ramping_group, "q")
    assert ramper.slow_start_since is not None
    ramping_group.set_slow_start(0)
    assert ramper.slow_start_since is None and not ramping_group.ramping


def test_a_lone_ramping_target_gets_all_of_its_groups_requests() -> None:
    # Slow start shares a group's requests among its targets; it never starves a group.
    clock = _Clock()
    group = TargetGroup("canary", "round_robin", slow_start_s=60, clock=clock)
    old = _healthy(group, "old")
    new = _healthy(group, "new")
    assert new.slow_start_since is not None
    old.state = "draining"
    group.health_changed(old)
    assert group.only is new
