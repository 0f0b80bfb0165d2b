"""The daemon's `GET /metrics`: gathers what the stack knows (the data plane's totals,
weights and refusals; the latest rollout) and answers Prometheus text
(`observability/prometheus.py` writes it), on the admin socket and, with `[local]
metrics_port` set, on 127.0.0.1:PORT for a Prometheus server to scrape."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from canary_deploy.balancer.admin_http import LoopbackServer, Routes
from canary_deploy.errors import CanaryError
from canary_deploy.local.listener import Listener
from canary_deploy.observability.prometheus import RolloutSnapshot, StackSnapshot, render_stack
from canary_deploy.rollout.handover import open_rollouts

log = logging.getLogger("canary.daemon")
PATH = "/metrics"


class MetricsEndpoint:
    """`GET /metrics` of one stack, and the loopback port that serves it too."""

    def __init__(self, listener: Listener, state_dir: Path) -> None:
        self.listener = listener
        self.state_dir = state_dir
        self.loopback: LoopbackServer | None = None
        self.configured_port: int | None = None  # `[local] metrics_port`
        self.loopback_error: str | None = None  # why the configured port is not served

    def add_route(self, routes: Routes) -> None:
        routes.add_route("GET", PATH, self.handle)

    async def handle(self, body: Any, query: dict[str, str]) -> str:
        return render_stack(await asyncio.to_thread(self.snapshot))

    def snapshot(self) -> StackSnapshot:
        """One read of each source (blocking: the data plane's socket, the state db)."""
        metrics = self.listener.metrics
        totals, rejections = metrics.totals(), metrics.rejections()
        known, rollout = self._rollout()
        weights = self.listener.get_weights()
        return StackSnapshot(totals, weights, rejections, rollout, rollout_known=known)

    def _rollout(self) -> tuple[bool, RolloutSnapshot | None]:
        """(readable, the latest rollout): a state db that cannot be read leaves the
        rollout's metrics out rather than failing the traffic's."""
        try:
            store = open_rollouts(self.state_dir)
            if store is None:
                return True, None
            with closing(store):
                latest = store.latest()
        except (CanaryError, sqlite3.Error) as exc:
            log.warning("metrics: the rollout state cannot be read: %s", exc)
            return False, None
        return True, None if latest is None else RolloutSnapshot.of(latest)

    async def serve_loopback(self, port: int | None) -> str | None:
        """Serve `/metrics` on 127.0.0.1:`port` too (None: not asked). Returns the URL, or
        None; a port that cannot be bound is remembered and logged, never fatal (the
        listener matters more than its metrics)."""
        self.configured_port = port
        if port is None:
            return None
        server = LoopbackServer(port)
        self.add_route(server)
        try:
            await server.start()
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            self.loopback_error = f"cannot serve metrics on 127.0.0.1:{port}: {why}"
            log.warning("%s", self.loopback_error)
            return None
        self.loopback = server
        return self.url

    @property
    def url(self) -> str | None:
        """Where Prometheus scrapes the metrics, when a loopback port serves them."""
        return None if self.loopback is None else f"{self.loopback.url}{PATH}"

    async def stop(self) -> None:
        if self.loopback is not None:
            await self.loopback.stop()
            self.loopback = None
