"""Who owns the listener's weights during a rollout: the controller's own changes told
apart from changes made outside it (the console, another tool, `set-weights` while
paused), which pause the rollout instead of being overwritten."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from canary_deploy.backend import TrafficRouter
from canary_deploy.rollout.model import ACTOR, EventRecord, Rollout, RolloutStatus
from canary_deploy.weights import Weights


class WeightsSeen(StrEnum):
    """What the live weights say about who changed them last."""

    HELD = "held"  # what the controller last applied: nobody else touched them
    OWN = "own"  # the step's weights, though not recorded as applied: the controller's
    #             own call whose record a crash lost
    OUTSIDE = "outside"  # neither: someone else changed them


def classify(
    live: Weights, applied: Weights | None, want: Weights, *, running: bool
) -> WeightsSeen:
    """Who set `live`, given the weights the controller last `applied` (None before its
    first call) and the step's weights `want`.

    The controller records a step change before its listener call and the applied
    weights after it, so a crash in between leaves the live weights equal to either the
    applied ones (the call failed) or the step's (it went through) - never anything else.

    >>> w = Weights
    >>> classify(w(95, 5), w(95, 5), w(75, 25), running=True)  # step changed, call to come
    <WeightsSeen.HELD: 'held'>
    >>> classify(w(75, 25), w(95, 5), w(75, 25), running=True)  # the call went through
    <WeightsSeen.OWN: 'own'>
    >>> classify(w(50, 50), w(95, 5), w(95, 5), running=True)  # the console
    <WeightsSeen.OUTSIDE: 'outside'>
    >>> classify(w(95, 5), w(80, 20), w(95, 5), running=False)  # while paused: by hand
    <WeightsSeen.OUTSIDE: 'outside'>
    """
    if applied is None or live == applied:
        return WeightsSeen.HELD
    if running and live == want:
        return WeightsSeen.OWN
    return WeightsSeen.OUTSIDE


def watch_weights(r: Rollout, live: Weights, events: list[EventRecord]) -> Rollout:
    """Before anything else in a tick: acknowledge the live weights. A change made outside
    the rollout pauses it (a running one) and is recorded once; nothing is overwritten.
    Only a running or paused rollout is watched (an ending one sets its own weights)."""
    if r.status not in (RolloutStatus.RUNNING, RolloutStatus.PAUSED):
        return r
    want = r.plan.weights(r.step)
    seen = classify(live, r.applied_weights, want, running=r.status is RolloutStatus.RUNNING)
    if seen is WeightsSeen.HELD:
        return r
    before = r.applied_weights
    r = replace(r, applied_weights=live)
    if seen is WeightsSeen.OWN:
        events.append(weights_event(before, live, f"step {r.step + 1}"))
        return r
    events.append(
        EventRecord(
            "external",
            "outside canary",
            f"weights {before} -> {live} changed outside the rollout (console, another "
            "tool, or `set-weights` while paused)",
            {"from": None if before is None else before.to_dict(), "to": live.to_dict()},
        )
    )
    if r.status is RolloutStatus.PAUSED:
        return r  # already in a human's hands: their change stands, the pause stays
    reason = (
        f"the listener's weights were changed outside the rollout ({before} expected, "
        f"{live} live): paused, nothing overwritten"
    )
    events.append(
        EventRecord(
            "paused",
            ACTOR,
            f"{reason}; `canary resume` puts step {r.step + 1}'s {want} back, "
            "`canary abort` rolls back",
            None,
        )
    )
    return replace(r, status=RolloutStatus.PAUSED, reason=reason)


def change_weights(
    router: TrafficRouter, before: Weights | None, after: Weights, why: str
) -> EventRecord:
    """One listener call the controller makes, and its audit line (the one place a
    rollout changes weights)."""
    router.set_weights(after)
    return weights_event(before, after, why)


def weights_event(before: Weights | None, after: Weights, why: str) -> EventRecord:
    """The audit line of a listener call the controller made."""
    start = "?" if before is None else str(before)
    return EventRecord(
        "weights",
        ACTOR,
        f"weights {start} -> {after} ({why})",
        {"from": None if before is None else before.to_dict(), "to": after.to_dict()},
    )
