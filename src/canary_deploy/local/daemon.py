"""The local stack daemon's lifecycle: one background process per state directory.

It holds the balancer, the services and the admin socket (routes in `admin_routes`), and
restores spec and weights on restart. Started by `canary deploy` as
`python -m canary_deploy.local.daemon --state-dir DIR ...`; it reports readiness (or why
it could not start) as one JSON line on `--ready-fd`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from canary_deploy.backend import ReleaseSpec, Version
from canary_deploy.balancer import Balancer, BalancerConfig, HealthCheckConfig
from canary_deploy.balancer.admin import AdminServer, balancer_routes
from canary_deploy.local.admin_routes import StackAdmin
from canary_deploy.local.controller_host import ControllerHost
from canary_deploy.local.paths import StackPaths, private_dir, private_opener
from canary_deploy.local.processes import (
    ProcessLauncher,
    kill_stack_processes,
    prune_task_logs,
)
from canary_deploy.local.services import Supervisor, SupervisorConfig
from canary_deploy.local.store import StateStore
from canary_deploy.local.tasks import HealthState
from canary_deploy.local.watchdog import start_watchdog
from canary_deploy.weights import Weights

log = logging.getLogger("canary.daemon")
HealthProfile = Literal["alb", "fast"]
DEFAULT_WEIGHTS = Weights(95, 5)
PERSIST_EVERY_S = 2.0
METRICS_KEPT_S = 24 * 3600
# Fast profile: a drained task stops within seconds; alb: ALB's default 300 s.
DEREGISTRATION_DELAY_S: dict[HealthProfile, float] = {"fast": 2.0, "alb": 300.0}


@dataclass(frozen=True)
class DaemonOptions:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    health_profile: HealthProfile = "fast"
    deregistration_delay_s: float | None = None
    # The listener's health check path and stickiness; None = from the stored spec.
    health_check_path: str | None = None
    stickiness_s: int | None = None

    @property
    def deregistration_delay(self) -> float:
        if self.deregistration_delay_s is not None:
            return self.deregistration_delay_s
        return DEREGISTRATION_DELAY_S[self.health_profile]


class _Registry:
    """Adapts the balancer to what the supervisor needs (target ids -> health state)."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer

    def register_target(self, group: Version, target_id: str, host: str, port: int) -> None:
        self.balancer.register_target(group, target_id, host, port)

    async def deregister_target(
        self, group: Version, target_id: str, *, delay_s: float | None = None
    ) -> None:
        await self.balancer.deregister_target(group, target_id, delay_s=delay_s)

    def target_states(self) -> dict[str, HealthState]:
        return {
            t.target_id: t.state
            for targets in self.balancer.target_health().values()
            for t in targets
        }


class StackDaemon:
    """Owns every long-lived piece of one local stack; `run()` until asked to stop."""

    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.paths = StackPaths.for_dir(options.state_dir)
        self.started = time.time()
        self._stop = asyncio.Event()

    # ---- lifecycle

    async def run(self, ready: Callable[[dict[str, Any]], None]) -> None:
        private_dir(self.paths.state_dir)
        # One daemon per state directory: two concurrent `deploy`s must not both start
        # one (the second would kill the first one's tasks as leftovers). The kernel
        # drops the lock when the process dies, also on kill -9.
        with open(self.paths.lock_file, "w", opener=private_opener) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                ready({"error": "already_running", "message": "a daemon already runs here"})
                return
            self.store = StateStore(self.paths.state_dir)
            try:
                await self._run(ready)
            finally:
                self.store.close()

    async def _run(self, ready: Callable[[dict[str, Any]], None]) -> None:
        spec = self.store.load_spec()
        weights = self.store.load_weights() or (spec.weights if spec else DEFAULT_WEIGHTS)
        self.balancer = Balancer(self._balancer_config(spec, weights))
        try:
            await self.balancer.start()
        except OSError as exc:
            ready(_bind_error(exc, self.options))
            return
        self.store.save_listener(self.options.host, self.balancer.port)
        try:
            await self._serve(spec, ready)
        finally:
            await self.balancer.stop()

    async def _serve(
        self, spec: ReleaseSpec | None, ready: Callable[[dict[str, Any]], None]
    ) -> None:
        # Tasks a previous daemon left (it was killed): they are not ours to adopt.
        leftovers = kill_stack_processes(self.paths.marker)
        if leftovers:
            self._event("daemon", None, f"killed {len(leftovers)} leftover task processes")
        prune_task_logs(self.paths.task_logs)
        watchdog = start_watchdog(self.paths.marker)
        self.balancer.metrics.import_buckets(self.store.load_buckets(time.time() - 3600))
        self.supervisor = Supervisor(
            ProcessLauncher(self.paths.task_logs, self.paths.marker, self.options.host),
            _Registry(self.balancer),
            SupervisorConfig(
                host=self.options.host, deregistration_delay_s=self.options.deregistration_delay
            ),
            on_event=self._event,
        )
        routes = StackAdmin(
            self.store,
            self.balancer,
            self.supervisor,
            url=self.url,
            started=self.started,
            on_event=self._event,
            stop=self._stop.set,
        )
        admin = AdminServer(str(self.paths.socket))
        controller = ControllerHost(self.paths, self._event)
        jobs: list[asyncio.Future[None]] = []
        try:
            if spec is not None:
                await routes.restore(spec)
            # First match wins: ours go first so PUT /weights also persists the weights.
            routes.add_routes(admin)
            balancer_routes(admin, self.balancer)
            await admin.start()
            with open(self.paths.pid_file, "w", opener=private_opener) as pid_file:
                pid_file.write(f"{os.getpid()}\n")
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
            jobs += [
                asyncio.ensure_future(self.supervisor.run()),
                asyncio.ensure_future(self._persist()),
                asyncio.ensure_future(controller.run()),
            ]
            self._event("daemon", None, f"listening on {self.url} (pid {os.getpid()})")
            ready({"ok": True, "url": self.url, "pid": os.getpid()})
            await self._stop.wait()
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.to_thread(controller.stop)
            await self.supervisor.stop_all()
            self._save_metrics()
            await admin.stop()
            watchdog.terminate()  # it sweeps (nothing is left by now) and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(timeout=5)
            with contextlib.suppress(FileNotFoundError):
                self.paths.pid_file.unlink()
            self._event("daemon", None, "stopped")

    def _balancer_config(self, spec: ReleaseSpec | None, weights: Weights) -> BalancerConfig:
        path = self.options.health_check_path or (spec.health_check_path if spec else "/")
        stickiness = self.options.stickiness_s or (spec.stickiness_seconds if spec else None)
        health = (
            HealthCheckConfig.fast(path)
            if self.options.health_profile == "fast"
            else HealthCheckConfig(path=path)
        )
        return BalancerConfig(
            host=self.options.host,
            port=self.options.port,
            weights=weights,
            stickiness_s=stickiness,
            health=health,
            deregistration_delay_s=self.options.deregistration_delay,
            slow_start_s=spec.slow_start_seconds if spec else 0,
        )

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.balancer.port}/"

    def _event(self, kind: str, version: Version | None, message: str) -> None:
        log.info("%s%s: %s", kind, f" [{version}]" if version else "", message)
        self.store.add_event(kind, version, message)

    async def _persist(self) -> None:
        """Metric buckets to disk every few seconds, so a crash loses at most that much."""
        last_prune = 0.0
        while True:
            await asyncio.sleep(PERSIST_EVERY_S)
            self._save_metrics()
            if time.time() - last_prune > 600:
                self.store.prune(time.time() - METRICS_KEPT_S)
                last_prune = time.time()

    def _save_metrics(self) -> None:
        # Re-save the last seconds too: they were still filling at the previous save.
        self.store.save_buckets(
            self.balancer.metrics.export_buckets(time.time() - 2 * PERSIST_EVERY_S)
        )


def _bind_error(exc: OSError, options: DaemonOptions) -> dict[str, Any]:
    where = f"{options.host}:{options.port}"
    if exc.errno == errno.EADDRINUSE:
        return {
            "error": "port_in_use",
            "message": f"port {options.port} on {options.host} is already in use",
            "listen": where,
        }
    return {
        "error": "bind",
        "message": f"cannot listen on {where}: {exc.strerror or exc}",
        "listen": where,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m canary_deploy.local.daemon")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--health-profile", choices=("fast", "alb"), default="fast")
    parser.add_argument("--deregistration-delay", type=float, default=None)
    parser.add_argument("--health-check-path", default=None)
    parser.add_argument("--stickiness", type=int, default=None)
    parser.add_argument("--ready-fd", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    options = DaemonOptions(
        state_dir=args.state_dir,
        host=args.host,
        port=args.port,
        health_profile=args.health_profile,
        deregistration_delay_s=args.deregistration_delay,
        health_check_path=args.health_check_path,
        stickiness_s=args.stickiness,
    )

    def ready(doc: dict[str, Any]) -> None:
        log.info("startup: %s", doc)
        if args.ready_fd is not None:
            with contextlib.suppress(OSError), os.fdopen(args.ready_fd, "w") as fh:
                fh.write(json.dumps(doc) + "\n")

    runner: Callable[..., None] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    runner(StackDaemon(options).run(ready))


if __name__ == "__main__":
    main()
