"""What every client connection of one listener shares, and the sweep that enforces the
idle timeout and the head deadline for all of them."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from canary_deploy.balancer.limits import HEAD_TIMEOUT_S, default_max_connections
from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.routing import Router, Stickiness
from canary_deploy.balancer.rules import ListenerRules

_monotonic = time.monotonic  # the clock of every idle-timeout comparison


class Client(Protocol):
    """A client connection, as the listener sees it (`proxy.ClientConnection`)."""

    transport: Any

    def check_idle(self, now: float, limit: float) -> None:
        """Enforce the idle timeout `limit` and the head deadline at monotonic `now`."""
        ...


class ProxyContext:
    """What every connection of one listener shares."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        router: Router,
        metrics: MetricsRecorder,
        *,
        idle_timeout_s: float,
        stickiness: Stickiness | None,
        listen_port: int = 0,
        listen_host: str = "127.0.0.1",
        head_timeout_s: float = HEAD_TIMEOUT_S,
        max_connections: int | None = None,
        rules: ListenerRules | None = None,
    ) -> None:
        self.loop = loop
        self.router = router
        self.metrics = metrics
        self.idle_timeout_s = idle_timeout_s
        self.head_timeout_s = head_timeout_s
        self.max_connections = max_connections or default_max_connections()
        self.stickiness = stickiness
        # The listener's rules, changed in place; the fast path reads its pattern there.
        self.rules = ListenerRules() if rules is None else rules
        self.listen_port = str(listen_port).encode()
        self.listen_host = listen_host.encode()
        self.clients: set[Client] = set()
        self.connecting: set[asyncio.Task[None]] = set()
        self.held_total = 0  # ClientConnection.held, summed over every client

    def sweep(self) -> None:
        """Enforce the timeouts: close idle clients, 408 clients too slow to send a request
        (idle mid-request, or a head past the head deadline), 504 silent targets, drop idle
        pooled connections.

        One periodic sweep instead of a timer per request keeps the hot path free of
        timer churn; the timeout is honoured to within the sweep period.
        """
        now = _monotonic()
        limit = self.idle_timeout_s
        for client in list(self.clients):
            client.check_idle(now, limit)
        for group in self.router.groups.values():
            for target in group.targets.values():
                for upstream in list(target.idle):
                    if now - upstream.last_activity > limit:
                        upstream.close()
