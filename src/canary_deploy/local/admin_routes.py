"""The daemon's own admin routes, and the spec they read and change."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from canary_deploy.backend import GROUPS, ReleaseSpec, Role
from canary_deploy.balancer.admin import AdminServer, weights_from_body
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.local.listener import Listener
from canary_deploy.local.metrics_endpoint import MetricsEndpoint
from canary_deploy.local.report import daemon_status
from canary_deploy.local.services import EventSink, Supervisor
from canary_deploy.local.statedb import damage
from canary_deploy.local.store import StateStore, spec_from_dict, spec_to_dict
from canary_deploy.local.tasks import ServiceSpec
from canary_deploy.routes import RouteMatch, TesterRoute, add_route, find_route, group_named
from canary_deploy.stickiness import listener_stickiness
from canary_deploy.weights import Weights

# Metrics a rebuilt state database gets back from memory (what an analysis looks at).
REBUILD_METRICS_S = 3600.0


def service_specs(spec: ReleaseSpec) -> dict[Role, ServiceSpec]:
    """Each group's service from the release spec (the baseline runs stable's image)."""
    return {v: ServiceSpec(spec.image(v), spec.desired_count(v)) for v in GROUPS}


class StackAdmin:
    """The spec the stack runs, and the admin calls that read or change it (changes of
    the spec one at a time, under a lock)."""

    def __init__(
        self,
        store: StateStore,
        balancer: Listener,
        supervisor: Supervisor,
        *,
        url: str,
        started: float,
        on_event: EventSink,
        stop: Callable[[], None],
        metrics: MetricsEndpoint | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.balancer = balancer
        self.supervisor = supervisor
        self.url = url
        self.started = started
        self.on_event = on_event
        self.stop = stop
        self._spec_lock = asyncio.Lock()
        self._spec: ReleaseSpec | None = None
        # Weight changes are numbered, so a client tells "mine was replaced by a later
        # one" (last writer wins) from "mine did not hold".
        self._weights_revision = store.weights_revision()
        store.rebuild_when_damaged(self._recent_buckets)
        # The listener starts under the same stickiness rule as every later change (a
        # daemon restarted after a rollback must not bind clients to the canary again).
        self._set_listener(balancer.get_weights())
        # The stored rules are the truth (a rule change is on disk before the listener
        # has it): a daemon that died in between puts the listener right.
        balancer.set_rules(store.load_rules())

    def _set_listener(self, weights: Weights) -> str:
        """Weights and the stickiness they allow, in one listener change; says what
        happened to stickiness ("" when none is configured). The configured duration (the
        spec's, fixed when the balancer starts) is the source, never the live listener's,
        which is off after a rollback."""
        configured = self.balancer.config.stickiness_s
        stickiness = listener_stickiness(configured, weights)
        self.balancer.set_forward(weights, stickiness)
        if configured is None:
            return ""
        return f", stickiness {stickiness} s" if stickiness else ", stickiness off"

    def _recent_buckets(self) -> list[dict[str, Any]]:
        return self.balancer.metrics.export_buckets(time.time() - REBUILD_METRICS_S)

    async def restore(self, spec: ReleaseSpec) -> None:
        """Run the spec a previous daemon ran, at the weights it left."""
        # A restart restores exactly what ran before: no trial for those images.
        await self.supervisor.apply(service_specs(spec), trial=False)
        self._spec = spec
        weights = self.balancer.get_weights()
        self.on_event("daemon", None, f"restored {_describe(spec)} at {weights}")

    def add_routes(self, admin: AdminServer) -> None:
        """Register these routes on `admin` (before the forwarded balancer routes, which
        keep them)."""
        admin.add_route("GET", "/weights", self._get_weights)
        admin.add_route("PUT", "/weights", self._put_weights)
        admin.add_route("GET", "/spec", self._get_spec)
        admin.add_route("PUT", "/spec", self._put_spec)
        admin.add_route("PUT", "/baseline", self._put_baseline)
        admin.add_route("GET", "/services", self._get_services)
        admin.add_route("GET", "/tasks", self._get_tasks)
        admin.add_route("GET", "/status", self._get_status)
        admin.add_route("GET", "/events", self._get_events)
        admin.add_route("POST", "/shutdown", self._shutdown)
        admin.add_route("POST", "/state/rebuild", self._rebuild_state)
        admin.add_route("GET", "/rules", self._get_rules)
        admin.add_route("POST", "/rules", self._post_rule)
        admin.add_route("DELETE", "/rules/{priority}", self._delete_rule)

    def _change_weights(self, weights: Weights) -> str:
        """One weight change, numbered; nothing awaits in here, so changes are applied
        one at a time in the order they arrive. Says what happened to stickiness."""
        self._weights_revision += 1
        # On disk first: a crash right after the call still restores what the user set.
        self.store.save_weights(weights, self._weights_revision)
        return self._set_listener(weights)

    def _weights_doc(self, weights: Weights, query: dict[str, str]) -> dict[str, Any]:
        """`?with_revision=1` adds the number of the change (older daemons ignore it)."""
        doc: dict[str, Any] = weights.to_dict()
        if query.get("with_revision"):
            doc["revision"] = self._weights_revision
        return doc

    async def _get_weights(self, body: Any, query: dict[str, str]) -> Any:
        """The live weights (and the number of the change that set them)."""
        return self._weights_doc(self.balancer.get_weights(), query)

    async def _put_weights(self, body: Any, query: dict[str, str]) -> Any:
        weights = weights_from_body(body)
        sticky = self._change_weights(weights)
        self.on_event("weights", None, f"set to {weights}{sticky}")
        return self._weights_doc(weights, query)

    async def _get_spec(self, body: Any, query: dict[str, str]) -> Any:
        return None if self._spec is None else spec_to_dict(self._spec)

    async def _put_spec(self, body: Any, query: dict[str, str]) -> Any:
        if not isinstance(body, dict):
            raise UsageError("PUT /spec needs a JSON object")
        try:
            spec = spec_from_dict(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"invalid spec: {exc}") from None
        async with self._spec_lock:
            first = self._spec is None
            # The baseline's task count belongs to the rollout (PUT /baseline): a deploy
            # in the middle of one must not pull its tasks from under its traffic.
            baseline = 0 if self._spec is None else self._spec.desired_count_baseline
            spec = replace(spec, desired_count_baseline=baseline)
            await self.supervisor.apply(service_specs(spec))
            self._spec = spec
            self.store.save_spec(spec)
            self.balancer.set_slow_start(spec.slow_start_seconds)
            if first and self.store.load_weights() is None:
                self._change_weights(spec.weights)
            self.on_event("deploy", None, _describe(spec))
        return {"weights": self.balancer.get_weights().to_dict()}

    async def _put_baseline(self, body: Any, query: dict[str, str]) -> Any:
        """{"desired_count": N}: N > 0 starts N baseline tasks (stable's image) and, in
        the same step, fresh canary tasks replacing the running ones, so both groups'
        tasks start together (`"restart_canary": false` only sets the count); 0 stops the
        baseline's tasks (its weight must be 0)."""
        if not isinstance(body, dict) or "desired_count" not in body:
            raise UsageError('PUT /baseline needs a JSON body {"desired_count": N}')
        count = body["desired_count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise UsageError(f"baseline desired_count must be an integer >= 0, got {count!r}")
        async with self._spec_lock:
            if self._spec is None:
                raise OperationFailed("the local stack has no spec", hint="run `canary deploy`")
            weight = self.balancer.get_weights().baseline
            if count == 0 and weight > 0:
                raise OperationFailed(
                    f"the baseline still has {weight}% of the traffic: its tasks cannot stop",
                    hint="set its weight to 0 first (`canary set-weights S C`)",
                )
            spec = replace(self._spec, desired_count_baseline=count)
            # A rollout sizing both arms for a larger share adds tasks: nothing restarts.
            fresh = count > 0 and body.get("restart_canary", True) is not False
            restart: tuple[Role, ...] = ("canary",) if fresh else ()
            replaced = await self.supervisor.apply(service_specs(spec), restart=restart)
            self._spec = spec
            self.store.save_spec(spec)
            if count:
                self.on_event(
                    "baseline",
                    "baseline",
                    f"start {count} x {spec.image_stable}"
                    + ("; canary tasks restarted with it" if fresh else ""),
                )
            else:
                self.on_event("baseline", "baseline", "stop: 0 tasks")
        return {"desired_count": count, "replaced": replaced}

    # ---- tester routes: listener rules before the weighted action (never touched by a
    # ---- weight change; cleared by `delete` with the spec)

    async def _get_rules(self, body: Any, query: dict[str, str]) -> Any:
        """The listener's rules as it has them now, in priority order."""
        return [r.to_dict() for r in self.balancer.get_rules()]

    async def _post_rule(self, body: Any, query: dict[str, str]) -> Any:
        """{"kind": "header"|"cookie", "name", "value", "to"}: a rule after the others."""
        if not isinstance(body, dict) or not {"kind", "name", "value", "to"} <= body.keys():
            raise UsageError('POST /rules needs {"kind", "name", "value", "to"}')
        kind = body["kind"]
        if kind not in ("header", "cookie"):
            raise UsageError(f"unknown route kind {kind!r}", hint="header or cookie")
        match = RouteMatch.parse(kind, f"{body['name']}={body['value']}")
        routes = self.store.load_rules()
        route = add_route(routes, match, group_named(str(body["to"])))
        self._change_rules([*routes, route])
        self.on_event("route", route.to, f"added {route}")
        return route.to_dict()

    async def _delete_rule(self, body: Any, query: dict[str, str]) -> Any:
        routes = self.store.load_rules()
        route = find_route(routes, query["priority"])
        self._change_rules([r for r in routes if r != route])
        self.on_event("route", route.to, f"deleted {route}")
        return route.to_dict()

    def _change_rules(self, routes: list[TesterRoute]) -> None:
        # On disk first, as weights: a crash right after still restores them.
        self.store.save_rules(routes)
        self.balancer.set_rules(routes)

    async def _get_services(self, body: Any, query: dict[str, str]) -> Any:
        return {v: asdict(s) for v, s in self.supervisor.describe().items()}

    async def _get_tasks(self, body: Any, query: dict[str, str]) -> Any:
        return [asdict(t) for t in self.supervisor.tasks()]

    async def _get_events(self, body: Any, query: dict[str, str]) -> Any:
        since = int(query.get("since", "0") or 0)
        return [e.to_dict() for e in self.store.events(since_id=since)]

    async def _shutdown(self, body: Any, query: dict[str, str]) -> Any:
        if isinstance(body, dict) and body.get("forget"):
            self.store.clear_spec()
        # Let the admin server answer first, then stop.
        asyncio.get_running_loop().call_later(0.05, self.stop)
        return {"stopping": True}

    async def _rebuild_state(self, body: Any, query: dict[str, str]) -> Any:
        """`canary repair`: a damaged state database is moved aside and written anew
        from what this daemon holds; a sound one is left alone."""
        problem = await asyncio.to_thread(damage, self.store.path)
        if problem is None:
            return {"problem": None, "moved_to": None}
        moved = self.store.repair(problem)
        return {"problem": problem, "moved_to": str(moved)}

    async def _get_status(self, body: Any, query: dict[str, str]) -> Any:
        status = daemon_status(
            self.balancer,
            self.store.load_weights(),
            url=self.url,
            pid=os.getpid(),
            started=self.started,
            spec=self._spec,
            services=self.supervisor.describe(),
            now=time.time(),
        )
        if self.metrics is not None:
            status = replace(
                status,
                metrics_port=self.metrics.configured_port,
                metrics_url=self.metrics.url,
                metrics_error=self.metrics.loopback_error,
            )
        return status.to_dict()


def _describe(spec: ReleaseSpec) -> str:
    text = (
        f"stable {spec.desired_count_stable} x {spec.image_stable}, "
        f"canary {spec.desired_count_canary} x {spec.image_canary}"
    )
    if spec.desired_count_baseline:
        text += f", baseline {spec.desired_count_baseline} x {spec.image_stable}"
    return text
