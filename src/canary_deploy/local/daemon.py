"""The local stack's daemon: the control plane of one state directory.

It decides and the data plane (`dataplane.py`, its parent) serves: the daemon holds the
services' supervisor, the admin socket (routes in `admin_routes`), the state store and
the rollout controller's host, and drives the data plane's listener and task processes
through its socket. It takes the stack over when it starts: a fresh data plane gets the
stored spec and weights; one that kept serving after a daemon died keeps its weights,
targets, tasks and metrics, and the new daemon adopts them. It reports readiness (or why
it could not start) as one JSON line on `--ready-fd`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from canary_deploy.backend import Role
from canary_deploy.balancer.admin import AdminServer, Handler
from canary_deploy.errors import CanaryError
from canary_deploy.local.admin_routes import StackAdmin
from canary_deploy.local.controller_host import ControllerHost
from canary_deploy.local.dataplane import run_loop, write_ready
from canary_deploy.local.dataplane_client import (
    DataPlaneClient,
    RemoteLauncher,
    RemoteListener,
    RemoteRegistry,
)
from canary_deploy.local.metrics_endpoint import MetricsEndpoint
from canary_deploy.local.options import StackOptions, process_options
from canary_deploy.local.paths import StackPaths, private_dir, private_opener, sole_holder
from canary_deploy.local.processes import prune_task_logs
from canary_deploy.local.services import Supervisor, SupervisorConfig
from canary_deploy.local.store import StateStore
from canary_deploy.local.tasks import Task

log = logging.getLogger("canary.daemon")
PERSIST_EVERY_S = 2.0
METRICS_KEPT_S = 24 * 3600
# A daemon that takes a running data plane over saves this much of its metrics again: the
# seconds no daemon persisted (it was down) reach the disk too.
TAKEOVER_RESAVE_S = 600.0
# The balancer's read routes, answered by the data plane (PUT /weights is the daemon's:
# it also persists the weights; GET /metrics too: it adds weights and the rollout).
FORWARDED_ROUTES = (
    ("GET", "/weights"), ("GET", "/targets"), ("POST", "/targets"),
    ("DELETE", "/targets/{group}/{id}"), ("GET", "/counts"),
    ("GET", "/quantiles"), ("GET", "/buckets"),
)  # fmt: skip


class StackDaemon:
    """Owns the control plane of one local stack; `run()` until asked to stop."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.paths = StackPaths.for_dir(options.state_dir)
        self.started = time.time()
        self._stop = asyncio.Event()

    # ---- lifecycle

    async def run(self, ready: Callable[[dict[str, Any]], None]) -> None:
        private_dir(self.paths.state_dir)
        with sole_holder(self.paths.lock_file) as held:
            if not held:
                ready({"error": "already_running", "message": "a daemon already runs here"})
                return
            self.store = StateStore(self.paths.state_dir)
            try:
                await self._run(ready)
            finally:
                self.store.close()

    async def _run(self, ready: Callable[[dict[str, Any]], None]) -> None:
        client = DataPlaneClient(self.paths.dataplane_socket)
        try:
            state = client.request("POST", "/attach", {"pid": os.getpid()})
        except CanaryError as exc:
            ready({"error": "no_data_plane", "message": f"no data plane: {exc.message}"})
            return
        self.listener = RemoteListener(client, self.options, state)
        self.store.save_listener(self.options.host, self.listener.port)
        launcher = RemoteLauncher(client, self.options.host)
        self.supervisor = Supervisor(
            launcher,
            RemoteRegistry(client),
            SupervisorConfig(
                host=self.options.host, deregistration_delay_s=self.options.deregistration_delay
            ),
            on_event=self._event,
        )
        if state["fresh"]:
            prune_task_logs(self.paths.task_logs)
        else:
            self._take_over(state, launcher)
        await self._serve(client, ready)

    def _take_over(self, state: dict[str, Any], launcher: RemoteLauncher) -> None:
        """Adopt what the data plane kept serving while no daemon ran."""
        for doc in state["tasks"]:
            handle = launcher.handle(doc)
            self.supervisor.adopt(
                Task(
                    doc["task_id"],
                    doc["version"],
                    doc["image"],
                    handle,
                    started_at=float(doc["started_at"]),
                    state=doc["state"],
                )
            )
        self._save_metrics(time.time() - TAKEOVER_RESAVE_S)
        self._event(
            "daemon",
            None,
            f"took over the data plane (pid {state['pid']}): {len(state['tasks'])} tasks "
            f"kept, weights {state['weights']}, listener never stopped",
        )

    async def _serve(
        self, client: DataPlaneClient, ready: Callable[[dict[str, Any]], None]
    ) -> None:
        """The admin socket and the daemon's jobs, until asked to stop or a job fails."""
        spec = self.store.load_spec()
        metrics = MetricsEndpoint(self.listener, self.paths.state_dir)
        routes = StackAdmin(
            self.store,
            self.listener,
            self.supervisor,
            url=self.url,
            started=self.started,
            on_event=self._event,
            stop=self._stop.set,
            metrics=metrics,
        )
        admin = AdminServer(str(self.paths.socket))
        controller = ControllerHost(self.paths, self._event)
        jobs: list[asyncio.Future[None]] = []
        try:
            if spec is not None:
                await routes.restore(spec)
            # The daemon's own routes first; the forwarded balancer routes keep them (so a
            # PUT /weights here also persists the weights).
            routes.add_routes(admin)
            metrics.add_route(admin)
            forward_routes(admin, client)
            await admin.start()
            await self._serve_metrics(metrics)
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
            await self._until_stopped(jobs)
        finally:
            for job in jobs:
                job.cancel()
            await self._stop_serving(controller, metrics, admin)

    async def _stop_serving(
        self, controller: ControllerHost, metrics: MetricsEndpoint, admin: AdminServer
    ) -> None:
        """After serving, asked to stop or not: the controller host, the tasks (on purpose
        only), the last metrics, the sockets and the pid file."""
        await asyncio.to_thread(controller.stop)
        if self._stop.is_set():
            # Stopping on purpose stops the stack; a crash leaves the tasks serving
            # for the next daemon.
            await self.supervisor.stop_all()
        self._save_metrics(time.time() - 2 * PERSIST_EVERY_S)
        await metrics.stop()
        await admin.stop()
        self.paths.pid_file.unlink(missing_ok=True)
        self._event("daemon", None, "stopped")

    async def _serve_metrics(self, metrics: MetricsEndpoint) -> None:
        """The metrics' loopback port, when one is set: where it serves, or why not."""
        url = await metrics.serve_loopback(self.options.metrics_port)
        if url is not None:
            self._event("metrics", None, f"Prometheus metrics on {url}")
        elif metrics.loopback_error is not None:
            self._event("metrics", None, metrics.loopback_error)

    async def _until_stopped(self, jobs: list[asyncio.Future[None]]) -> None:
        """Until asked to stop. A job that fails (the supervisor, the metric saves, the
        controller host) fails the daemon: the data plane starts a fresh one, which takes
        the stack over, rather than this one running on without it."""
        stopped: asyncio.Future[None] = asyncio.ensure_future(self._until_stop())
        try:
            done, _ = await asyncio.wait([stopped, *jobs], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        for job in done:
            if job is not stopped:
                job.result()  # raises what ended it
                raise RuntimeError("a daemon job ended on its own")

    async def _until_stop(self) -> None:
        await self._stop.wait()

    @property
    def url(self) -> str:
        return f"http://{self.options.host}:{self.listener.port}/"

    def _event(self, kind: str, role: Role | None, message: str) -> None:
        log.info("%s%s: %s", kind, f" [{role}]" if role else "", message)
        self.store.add_event(kind, role, message)

    async def _persist(self) -> None:
        """Metric buckets to disk every few seconds: a restarted data plane starts from
        them (a daemon restart loses nothing: the data plane keeps counting)."""
        last_prune = 0.0
        while True:
            await asyncio.sleep(PERSIST_EVERY_S)
            # Re-save the last seconds too: they were still filling at the previous save.
            since = time.time() - 2 * PERSIST_EVERY_S
            buckets = await asyncio.to_thread(self.listener.metrics.export_buckets, since)
            self.store.save_buckets(buckets)
            if time.time() - last_prune > 600:
                self.store.prune(time.time() - METRICS_KEPT_S)
                last_prune = time.time()

    def _save_metrics(self, since: float) -> None:
        try:
            buckets = self.listener.metrics.export_buckets(since)
        except CanaryError as exc:  # the data plane is gone: the watchdog ends us soon
            log.warning("metrics not saved: %s", exc.message)
            return
        self.store.save_buckets(buckets)


def forward_routes(admin: AdminServer, client: DataPlaneClient) -> None:
    """The balancer's routes on the daemon's socket, answered by the data plane; a route
    the daemon answers itself (registered before) is kept."""
    for method, path in FORWARDED_ROUTES:
        admin.add_route(method, path, _forwarder(client, method, path), if_taken="keep")


def _forwarder(client: DataPlaneClient, method: str, path: str) -> Handler:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]

    async def forward(body: Any, query: dict[str, str]) -> Any:
        target = path.format(**{n: quote(query[n]) for n in names})
        rest = {k: v for k, v in query.items() if k not in names}
        return await client.request_async(
            method, target + (f"?{urlencode(rest)}" if rest else ""), body
        )

    return forward


def main(argv: list[str] | None = None) -> None:
    options, ready_fd = process_options("canary_deploy.local.daemon", argv)
    daemon = StackDaemon(options)
    run_loop(daemon.run(lambda doc: write_ready(ready_fd, doc)))


if __name__ == "__main__":
    main()
