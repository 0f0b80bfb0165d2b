"""`LocalRouter` and `LocalRoutes`: the `TrafficRouter` and `TesterRouter` Protocols over the
local balancer's listener (its weights, its rules)."""

from __future__ import annotations

from canary_deploy.backend import Role
from canary_deploy.local.stack import LocalStack
from canary_deploy.routes import RouteMatch, TesterRoute, routes_from_list
from canary_deploy.weights import Weights


class LocalRouter:
    """The listener's weights, read from and written to the balancer itself."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        # The weights this router set last and the daemon's number for that change.
        self._last_set: tuple[Weights, int] | None = None

    def get_weights(self) -> Weights:
        return Weights.from_dict(self.stack.request("GET", "/weights"))

    def set_weights(self, weights: Weights) -> None:
        """All three groups' weights in one admin call (one listener change). When that
        call had to restart the stack, it returns once the listener can serve them."""
        doc = self.stack.request("PUT", "/weights?with_revision=1", weights.to_dict())
        self._last_set = (weights, int(doc.get("revision", 0)))
        self.stack.wait_serving(weights)

    def verify_weights(self, weights: Weights) -> bool:
        return self.get_weights() == weights

    def replaced_since_set(self, weights: Weights) -> bool:
        """True when this router's last change set `weights` and a later change (another
        command's) has been applied since: the daemon numbers them."""
        if self._last_set is None or self._last_set[0] != weights or not self._last_set[1]:
            return False  # a daemon from before the numbering says revision 0
        live = self.stack.request("GET", "/weights?with_revision=1")
        return int(live.get("revision", 0)) > self._last_set[1]


class LocalRoutes:
    """The listener's tester routes, kept by the daemon (stored, and restored with the
    stack) and evaluated by the balancer before the weighted action."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def list_routes(self) -> list[TesterRoute]:
        return routes_from_list(self.stack.request("GET", "/rules"))

    def add_route(self, match: RouteMatch, to: Role) -> TesterRoute:
        body = {"kind": match.kind, "name": match.name, "value": match.value, "to": to}
        return TesterRoute.from_dict(self.stack.request("POST", "/rules", body))

    def delete_route(self, route: TesterRoute) -> None:
        self.stack.request("DELETE", f"/rules/{route.priority}")
