"""The values API calls change without CloudFormation (the listener's weights, the
baseline's task count), as stack parameters, and setting the listener's weights verified."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from canary_deploy.backend import TrafficRouter
from canary_deploy.errors import OperationFailed
from canary_deploy.weights import Weights

# What API calls change without CloudFormation (ModifyListener, UpdateService): every update
# passes their live values, and the stack records them before any other change.
WEIGHT_PARAMETERS = ("StableWeight", "CanaryWeight", "BaselineWeight")
LIVE_PARAMETERS = (*WEIGHT_PARAMETERS, "DesiredCountBaseline")
# Stable's count is live too, on a stack that autoscales it (Application Auto Scaling
# changes it); elsewhere it is the settings' own, never recorded ahead of an update.
AUTOSCALED_PARAMETERS = ("DesiredCountStable",)


def live_keys(
    stack_parameters: Mapping[str, str], update: Mapping[str, str | None] | None = None
) -> tuple[str, ...]:
    """The parameters an update records first when the stack's own values lag behind:
    stable's count too while the stack autoscales it and the update keeps doing so.

    >>> live_keys({"AutoScalingMetric": "cpu"})[-1]
    'DesiredCountStable'
    >>> turned_off = {"AutoScalingMetric": "off"}
    >>> "DesiredCountStable" in live_keys({"AutoScalingMetric": "cpu"}, turned_off)
    False
    """
    metrics = (stack_parameters.get("AutoScalingMetric"), (update or {}).get("AutoScalingMetric"))
    if "off" in metrics or metrics[0] is None:
        return LIVE_PARAMETERS
    return (*LIVE_PARAMETERS, *AUTOSCALED_PARAMETERS)


VERIFY_SECONDS = 10.0


def weights_of(parameters: Mapping[str, str | None]) -> Weights | None:
    """The weights stack parameters give the listener (None unless given as values).

    >>> weights_of({"StableWeight": "100", "CanaryWeight": "0", "BaselineWeight": "0"})
    Weights(stable=100, canary=0, baseline=0)
    >>> weights_of({"StableWeight": None, "CanaryWeight": None}) is None
    True
    """
    stable, canary = parameters.get("StableWeight"), parameters.get("CanaryWeight")
    if stable is None or canary is None:
        return None
    return Weights.from_alb(int(stable), int(canary), int(parameters.get("BaselineWeight") or 0))


def apply_weights(
    listener: TrafficRouter,
    weights: Weights,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """One ModifyListener to `weights`, then read back until the listener reports them."""
    listener.set_weights(weights)
    deadline = clock() + VERIFY_SECONDS
    while not listener.verify_weights(weights):
        if clock() >= deadline:
            raise OperationFailed(
                f"the listener reports {listener.get_weights()} after setting {weights}"
            )
        sleep(0.5)
