"""`LocalRouter`: the `TrafficRouter` Protocol over the local balancer's listener weights."""

from __future__ import annotations

from canary_deploy.local.stack import LocalStack
from canary_deploy.weights import Weights


class LocalRouter:
    """The listener's weights, read from and written to the balancer itself."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def get_weights(self) -> Weights:
        return Weights.from_dict(self.stack.request("GET", "/weights"))

    def set_weights(self, weights: Weights) -> None:
        """All three groups' weights in one admin call (one listener change). When that
        call had to restart the stack, it returns once the listener can serve them."""
        self.stack.request("PUT", "/weights", weights.to_dict())
        self.stack.wait_serving(weights)

    def verify_weights(self, weights: Weights) -> bool:
        return self.get_weights() == weights
