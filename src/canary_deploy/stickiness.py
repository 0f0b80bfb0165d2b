"""When the listener's target-group stickiness is on: one rule both targets apply.

On ALB a valid `AWSALBTG` cookie beats the weights: a client bound to a target group
keeps reaching it after its weight drops to 0, until the cookie expires or the forward
action's stickiness is disabled (docs/balancer.md, "Stickiness and weights"). A rollback
that only moved the weights would leave every bound client on the canary. So every
listener change sends the stickiness this rule gives for its weights, in the same call.
"""

from __future__ import annotations

from canary_deploy.weights import Weights


def stickiness_allowed(weights: Weights) -> bool:
    """True when a listener at these weights may bind clients to a target group: stable and
    canary both have weight and the baseline has none.

    Why this keeps every binding on a group that has weight: cookies are only issued
    while stickiness is on, so only for stable and canary (the baseline, at weight 0
    then, gets no request to bind). Any change that takes stable or canary to 0
    (a rollback, a promotion's 0/100) turns stickiness off in the same call, and it is
    on again only when both have weight again, so an old cookie still names a group
    with weight. The baseline is never a session's home: it only measures.

    >>> stickiness_allowed(Weights(95, 5)), stickiness_allowed(Weights(100, 0))
    (True, False)
    >>> stickiness_allowed(Weights(0, 100)), stickiness_allowed(Weights(90, 5, 5))
    (False, False)
    """
    return weights.stable > 0 and weights.canary > 0 and weights.baseline == 0


def listener_stickiness(configured_s: int | None, weights: Weights) -> int | None:
    """The AWSALBTG duration the listener gets with these weights (None: off).

    `configured_s` is the stack's (or spec's) setting, never the live listener's: the
    listener's is off after a rollback, and the configured duration must come back.

    >>> listener_stickiness(900, Weights(95, 5))
    900
    >>> print(listener_stickiness(900, Weights(100, 0)), listener_stickiness(None, Weights(95, 5)))
    None None
    """
    if configured_s and stickiness_allowed(weights):
        return configured_s
    return None
