"""The `Balancer` facade: one listener, three target groups, health checks and metrics."""

from __future__ import annotations

import asyncio
import contextlib

from canary_deploy.backend import GROUPS, Role
from canary_deploy.balancer.config import BalancerConfig, TargetHealth, check_stickiness
from canary_deploy.balancer.health import HealthChecker
from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.proxy import ClientConnection, ProxyContext
from canary_deploy.balancer.routing import RegisteredTarget, Router, Stickiness
from canary_deploy.balancer.rules import ListenerRules
from canary_deploy.errors import UsageError
from canary_deploy.routes import TesterRoute
from canary_deploy.weights import Weights

# How often the idle-timeout sweep runs, at most (it runs 4x per timeout when shorter).
MAX_SWEEP_PERIOD_S = 1.0
# How often a draining deregistration checks for in-flight requests.
DRAIN_POLL_S = 0.02
# While a target is in slow start its share is recomputed this often (at most).
MAX_RAMP_STEP_S = 1.0


class Balancer:
    """An ALB-like listener with a weighted forward action over stable, canary and baseline."""

    def __init__(self, config: BalancerConfig) -> None:
        self.config = config
        self.metrics = MetricsRecorder()
        self._router = Router(config.weights, config.algorithm, config.slow_start_s)
        self._stickiness = Stickiness(config.stickiness_s) if config.stickiness_s else None
        self._rules = ListenerRules()
        self._health = HealthChecker(config.health, self._on_health_change)
        self._server: asyncio.Server | None = None
        self._ctx: ProxyContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._ramper: asyncio.TimerHandle | None = None
        self._port = 0

    # ---- lifecycle

    async def start(self) -> None:
        """Bind the listener (OSError EADDRINUSE when busy) and start health checks."""
        loop = asyncio.get_running_loop()
        ctx = ProxyContext(
            loop,
            self._router,
            self.metrics,
            idle_timeout_s=self.config.idle_timeout_s,
            stickiness=self._stickiness,
            listen_host=self.config.host,
            head_timeout_s=self.config.head_timeout_s,
            max_connections=self.config.max_connections,
            rules=self._rules,
        )
        self._server = await loop.create_server(
            lambda: ClientConnection(ctx), self.config.host, self.config.port, backlog=1024
        )
        self._port = self._server.sockets[0].getsockname()[1]
        ctx.listen_port = str(self._port).encode()
        self._ctx = ctx
        for group in self._router.groups.values():
            for target in group.targets.values():
                self._health.watch(target)
        self._schedule_sweep()

    async def stop(self) -> None:
        """Close the listener and every connection, stop health checks."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._ramper is not None:
            self._ramper.cancel()
            self._ramper = None
        await self._health.stop()
        ctx = self._ctx
        if self._server is not None:
            self._server.close()
        if ctx is not None:
            for task in list(ctx.connecting):
                task.cancel()
            for client in list(ctx.clients):
                client.transport.close()
        for group in self._router.groups.values():
            for target in group.targets.values():
                for upstream in list(target.idle):
                    upstream.close()
                target.idle.clear()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None
        self._ctx = None

    def _schedule_sweep(self) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        ctx.sweep()
        period = min(MAX_SWEEP_PERIOD_S, self.config.idle_timeout_s / 4)
        self._sweeper = ctx.loop.call_later(period, self._schedule_sweep)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self._port

    @property
    def running(self) -> bool:
        return self._server is not None

    # ---- the forward action

    def get_weights(self) -> Weights:
        return self._router.chooser.weights

    def set_weights(self, weights: Weights) -> None:
        """Effective for the next request; requests in flight are not touched. The
        listener's stickiness stays as it is (see `set_forward`)."""
        self._router.chooser.set(weights)

    @property
    def stickiness_s(self) -> int | None:
        """The listener's AWSALBTG duration now (None: off); `config.stickiness_s` is
        what it was configured with."""
        return None if self._stickiness is None else self._stickiness.duration_s

    def set_forward(self, weights: Weights, stickiness_s: int | None) -> None:
        """Weights and stickiness in one listener change (ModifyListener's forward action
        with its `TargetGroupStickinessConfig`), both effective for the next request.

        Stickiness can be turned on only on a listener configured with it: the hot path
        of one started without it carries no stickiness at all."""
        if stickiness_s is not None:
            if self._stickiness is None:
                raise UsageError(
                    "this listener was started without stickiness: it cannot be turned on",
                    hint="start it with a stickiness duration",
                )
            check_stickiness(stickiness_s)
        self._router.chooser.set(weights)
        if self._stickiness is not None:
            self._stickiness.set_duration(stickiness_s)

    # ---- the listener's rules

    def get_rules(self) -> tuple[TesterRoute, ...]:
        """The tester routes, in priority order."""
        return self._rules.routes

    def set_rules(self, routes: list[TesterRoute]) -> None:
        """Replace every rule (evaluated before the weighted forward action), effective
        for the next request; the weights and stickiness are not touched."""
        self._rules.set(routes)

    @property
    def slow_start_s(self) -> float:
        return self._router.groups["stable"].slow_start_s

    def set_slow_start(self, seconds: float) -> None:
        """ALB's target-group `slow_start.duration_seconds`, on every group, live.

        Targets already healthy keep their full share; 0 ends every slow start."""
        for group in self._router.groups.values():
            group.set_slow_start(seconds)

    # ---- targets

    def register_target(self, group: Role, target_id: str, host: str, port: int) -> None:
        """Add a target to a group; it is `initial` until its first passing health check."""
        target_group = self._router.groups[_role(group)]
        existing = target_group.targets.get(target_id)
        if existing is not None and existing.state != "draining":
            if (existing.host, existing.port) == (host, port):
                return
            raise UsageError(f"target {target_id} is already registered in {group}")
        target = RegisteredTarget(target_id, host, port)
        target_group.register(target)
        if self._server is not None:
            self._health.watch(target)

    async def deregister_target(
        self, group: Role, target_id: str, *, delay_s: float | None = None
    ) -> None:
        """Drain a target: no new requests at once; returns when its in-flight requests
        finished or the deregistration delay passed, then forgets it."""
        target_group = self._router.groups[_role(group)]
        target = target_group.targets.get(target_id)
        if target is None:
            raise UsageError(f"no target {target_id} in {group}")
        target.state = "draining"
        target.reason = "Target.DeregistrationInProgress"
        target_group.health_changed(target)  # leaves slow start, gets no new requests
        await self._health.unwatch(target)
        for upstream in list(target.idle):
            upstream.close()
        target.idle.clear()
        delay = self.config.deregistration_delay_s if delay_s is None else delay_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while target.outstanding > 0 and loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        if target_group.targets.get(target_id) is target:
            del target_group.targets[target_id]
        target_group.refresh()

    def target_health(self) -> dict[Role, list[TargetHealth]]:
        return {
            role: [
                TargetHealth(t.target_id, t.host, t.port, t.state, t.reason)
                for t in self._router.groups[role].targets.values()
            ]
            for role in GROUPS
        }

    def _on_health_change(self, target: RegisteredTarget) -> None:
        for group in self._router.groups.values():
            if group.targets.get(target.target_id) is target:
                group.health_changed(target)
                if group.ramping and self._ramper is None:
                    self._ramp()

    def _ramp(self) -> None:
        """Move slow-start shares along while any target ramps; then stop ticking."""
        self._ramper = None
        groups = [g for g in self._router.groups.values() if g.ramping]
        for group in groups:
            group.refresh()
        if self._ctx is None or not any(g.ramping for g in groups):
            return
        step = min(MAX_RAMP_STEP_S, self.slow_start_s / 100)
        self._ramper = self._ctx.loop.call_later(step, self._ramp)


def _role(group: str) -> Role:
    for role in GROUPS:
        if group == role:
            return role
    raise UsageError(f"unknown target group {group!r}", hint="use stable, canary or baseline")
