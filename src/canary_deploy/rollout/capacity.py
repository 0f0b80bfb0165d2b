"""A step's capacity: the canary (and the baseline) sized for the share a step gives them
before their weight goes up, and the health gate: no more traffic until enough of their
targets are healthy. Waiting happens across ticks (a tick never blocks on it), is recorded
once, and pauses the rollout when it lasts longer than the step's max duration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from canary_deploy.backend import Role, Workload
from canary_deploy.rollout.model import ACTOR, EventRecord, Rollout, RolloutStatus
from canary_deploy.rollout.plan import tasks_for_share
from canary_deploy.weights import Weights

ARMS: tuple[Role, Role] = ("canary", "baseline")


def arm_needs(weights: Sequence[Weights], stable_tasks: int, cap: int | None) -> dict[Role, int]:
    """The tasks each arm needs to serve every split in `weights` it has a share of.

    >>> arm_needs([Weights(50, 25, 25), Weights(0, 100)], 4, None)
    {'canary': 4, 'baseline': 2}
    >>> arm_needs([Weights(95, 5)], 4, None)
    {'canary': 1}
    """
    needs: dict[Role, int] = {}
    for w in weights:
        n = tasks_for_share(w, stable_tasks, cap)
        for arm in ARMS:
            if w.of(arm) > 0:
                needs[arm] = max(needs.get(arm, 0), n)
    return needs


def raises_share(live: Weights, want: Weights) -> bool:
    """Whether going from `live` to `want` gives the canary or the baseline more traffic."""
    return any(want.of(arm) > live.of(arm) for arm in ARMS)


class Capacity:
    """Scales the arms up (never down) and reads their health, for the controller."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload

    def _scale_up(
        self,
        r: Rollout,
        weights: Sequence[Weights],
        *,
        target: int,
        what: str,
        events: list[EventRecord],
    ) -> dict[Role, int]:
        """Scale each arm to what `weights` need (never down); returns the needs."""
        services = self.workload.describe_services()
        stable = services.get("stable")
        needs = arm_needs(weights, stable.desired if stable else 0, r.plan.max_canary_tasks)
        desired = {arm: s.desired for arm, s in services.items()}
        grown = {arm: n for arm, n in needs.items() if desired.get(arm, 0) < n}
        for arm, n in grown.items():
            self.workload.scale(arm, n)
        if grown:
            events.append(_scaled(r, target, what, desired, grown))
        return needs

    def ready(
        self,
        r: Rollout,
        weights: Sequence[Weights],
        *,
        target: int,
        what: str,
        now: float,
        events: list[EventRecord],
    ) -> tuple[Rollout, bool]:
        """Scale each arm to what `weights` (the splits it must serve, e.g. the step's and
        the next one's) need, then True once each has that many healthy targets. Step
        `target` is the one the weights belong to; `what` names what waits (a weight,
        the promotion)."""
        needs = self._scale_up(r, weights, target=target, what=what, events=events)
        healthy = self.workload.healthy_targets(tuple(needs))
        shown = _health(healthy, needs)
        if all(healthy.get(arm, 0) >= n for arm, n in needs.items()):
            if r.health_wait_since is not None:
                waited = now - r.health_wait_since
                message = f"{_step(r)}: {shown} after {waited:.0f}s; going on"
                events.append(EventRecord("healthy", ACTOR, message))
                r = replace(r, health_wait_since=None)
            return r, True
        if r.health_wait_since is None:
            message = f"{_step(r)} waits for healthy targets before {what}: {shown}"
            events.append(
                EventRecord("waiting", ACTOR, message, {"healthy": healthy, "needs": needs})
            )
            return replace(r, health_wait_since=now), False
        waited = now - r.health_wait_since
        if waited <= r.plan.steps[r.step].max_duration_s:
            return r, False
        reason = f"{_step(r)} waited {waited:.0f}s for healthy targets before {what}: {shown}"
        events.append(
            EventRecord(
                "paused",
                ACTOR,
                f"{reason}; see `canary status` (tasks failing their health check?); "
                "`canary resume` waits again, `canary abort` rolls back",
                None,
            )
        )
        return replace(r, status=RolloutStatus.PAUSED, reason=reason), False


def _health(healthy: dict[Role, int], needs: dict[Role, int]) -> str:
    """E.g. "canary 2 of 2 healthy, baseline 1 of 2"."""
    parts = [f"{arm} {healthy.get(arm, 0)} of {n}" for arm, n in needs.items()]
    parts[0] += " healthy"
    return ", ".join(parts)


def _step(r: Rollout) -> str:
    return f"step {r.step + 1}/{len(r.plan.steps)}"


def _scaled(
    r: Rollout, target: int, what: str, desired: dict[Role, int], grown: dict[Role, int]
) -> EventRecord:
    parts = [f"{arm} from {desired.get(arm, 0)} to {n}" for arm, n in grown.items()]
    parts[0] = parts[0].replace(" from ", " scaled from ", 1) + " task(s)"
    message = (
        f"step {target + 1}/{len(r.plan.steps)} ({what}): {', '.join(parts)}, "
        "so that none carries more than a stable task"
    )
    data = {
        "step": target,
        "from": {arm: desired.get(arm, 0) for arm in grown},
        "to": dict(grown),
    }
    return EventRecord("scale", ACTOR, message, data)
