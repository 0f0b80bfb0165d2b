"""The data-plane process of one local stack: what an ALB and the ECS agents are.

It holds the balancer (listening socket, proxy, health checks, metric buckets) and the
task processes (its children), and serves them to the daemon on a unix socket (mode
0600). It decides nothing: the daemon (the control plane, its child) decides, and when
the daemon dies the listener and the tasks keep serving with their weights and targets
while the data plane starts a new daemon, which takes the stack over (see `keeper`).

Started by `canary deploy` as `python -m canary_deploy.local.dataplane --state-dir DIR
...`; an error binding the listener is reported as one JSON line on `--ready-fd`, and
the daemon it starts reports readiness on the same descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from canary_deploy.backend import GROUPS, Role
from canary_deploy.balancer import Balancer
from canary_deploy.balancer.admin import AdminServer, balancer_routes, group_of, weights_from_body
from canary_deploy.errors import UsageError
from canary_deploy.local.keeper import ControlPlaneKeeper
from canary_deploy.local.options import DEFAULT_WEIGHTS, StackOptions, process_options
from canary_deploy.local.paths import StackPaths, private_dir, private_opener, sole_holder
from canary_deploy.local.processes import (
    ProcessLauncher,
    free_port,
    kill_stack_processes,
    stack_processes,
)
from canary_deploy.local.store import StateStore
from canary_deploy.local.task_table import TaskTable
from canary_deploy.local.watchdog import start_watchdog

log = logging.getLogger("canary.dataplane")
RESTORED_METRICS_S = 3600
OPEN_HOLD_S = 15.0  # a restarted listener waits at most this long for its tasks


class DataPlane:
    """The balancer and the task processes of one stack; `run()` until the stack stops."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.paths = StackPaths.for_dir(options.state_dir)
        self.started = time.time()
        self._stop = asyncio.Event()
        self.attached: int | None = None  # the daemon that took the stack over last
        self.attaches = 0

    async def run(self, ready: Callable[[dict[str, Any]], None], ready_fd: int | None) -> None:
        private_dir(self.paths.state_dir)
        with sole_holder(self.paths.dataplane_lock_file) as held:
            if not held:
                ready({"error": "already_running", "message": "a data plane already runs here"})
                return
            # Processes of a data plane that was killed (its watchdog swept them, unless
            # it was killed too): nothing can take them over. A data plane started at
            # the same moment is not one of them: it finds the lock taken and exits.
            starting = [p for p in stack_processes(self.paths.marker) if _is_dataplane(p)]
            kill_stack_processes(self.paths.marker, spare=(os.getppid(), *starting))
            if not await self._start_balancer(ready):
                return
            try:
                await self._serve(ready_fd)
            finally:
                await self.balancer.stop()

    async def _start_balancer(self, ready: Callable[[dict[str, Any]], None]) -> bool:
        """The listener as the stored state left it: weights, rules, spec, the last hour's
        metrics."""
        with closing(StateStore(self.paths.state_dir)) as store:
            spec = store.load_spec()
            weights = store.load_weights() or (spec.weights if spec else DEFAULT_WEIGHTS)
            rules = store.load_rules()
            buckets = store.load_buckets(time.time() - RESTORED_METRICS_S)
        # With a spec to restore, the listener opens once its tasks are back (see
        # `_open_when_restored`); a busy port is still an error right away.
        self.restoring = spec is not None
        self.port = self.options.port
        if self.restoring and self.port == 0:
            self.port = free_port(self.options.host)
        config = replace(self.options.balancer_config(spec, weights), port=self.port)
        self.balancer = Balancer(config)
        self.balancer.metrics.import_buckets(buckets)
        self.balancer.set_rules(rules)
        try:
            if self.restoring:
                _check_port_free(self.options.host, self.port)
            else:
                await self.balancer.start()
                self.port = self.balancer.port
        except OSError as exc:
            ready(_bind_error(exc, self.options))
            return False
        return True

    async def _open_when_restored(self) -> None:
        """A restarted stack's listener opens once every group with weight has a target
        again (at most `OPEN_HOLD_S` later). Opened at once it would answer 503 for each
        group until that group's tasks are back - for longer for a group whose single
        task comes back after the first of stable's two: errors of no version that the
        judge would read as the canary's. Until then connections are refused: the outage
        that the death of the previous data plane began."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OPEN_HOLD_S
        while not self._targets_back() and loop.time() < deadline:
            await asyncio.sleep(0.02)
        try:
            await self.balancer.start()
        except OSError as exc:
            log.error("cannot open the listener again: %s; the stack stops", exc)
            self._stop.set()
            return
        log.info("listener open again on port %s: every group with weight has a target", self.port)

    def _targets_back(self) -> bool:
        weights, targets = self.balancer.get_weights(), self.balancer.target_health()
        return all(targets[v] for v in GROUPS if weights.of(v) > 0)

    async def _serve(self, ready_fd: int | None) -> None:
        self.tasks = TaskTable(
            ProcessLauncher(self.paths.task_logs, self.paths.marker, self.options.host)
        )
        admin = AdminServer(str(self.paths.dataplane_socket))
        self._add_routes(admin)
        keeper = ControlPlaneKeeper(self.options, self.paths, self._stop.set)
        self.keeper = keeper
        watchdog = start_watchdog(self.paths.marker)
        try:
            await admin.start()
            with open(self.paths.dataplane_pid_file, "w", opener=private_opener) as pid_file:
                pid_file.write(f"{os.getpid()}\n")
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
            keeper.start(ready_fd)
            if ready_fd is not None:
                os.close(ready_fd)  # the daemon holds it now: it says when the stack is ready
            jobs = [asyncio.ensure_future(keeper.run())]
            if self.restoring:
                jobs.append(asyncio.ensure_future(self._open_when_restored()))
            log.info("data plane on port %s (pid %s)", self.port, os.getpid())
            await self._stop.wait()
            for job in jobs:
                job.cancel()
        finally:
            await keeper.stop()
            self.tasks.kill_all()  # the daemon stopped them already, unless it hung
            await admin.stop()
            watchdog.terminate()  # it sweeps what is left and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(timeout=5)
            with contextlib.suppress(FileNotFoundError):
                self.paths.dataplane_pid_file.unlink()
            log.info("data plane stopped")

    # ---- the API the daemon uses (the balancer's own routes, two of them overridden)

    def _add_routes(self, admin: AdminServer) -> None:
        balancer_routes(admin, self.balancer)
        admin.add_route("POST", "/attach", self._attach)
        admin.add_route("GET", "/state", self._state)
        admin.add_route("PUT", "/forward", self._put_forward)
        admin.add_route("GET", "/slow-start", self._get_slow_start)
        admin.add_route("PUT", "/slow-start", self._put_slow_start)
        admin.add_route("POST", "/tasks", self._start_task)
        admin.add_route("GET", "/tasks", self._get_tasks)
        admin.add_route("POST", "/tasks/{id}/signal", self._signal_task)
        admin.add_route("GET", "/tasks/{id}/output", self._task_output)
        # Target changes also move the task's state (a daemon taking over reads it).
        admin.add_route("POST", "/targets", self._register, if_taken="replace")
        admin.add_route("DELETE", "/targets/{group}/{id}", self._deregister, if_taken="replace")

    async def _attach(self, body: Any, query: dict[str, str]) -> Any:
        """A daemon takes the stack over; the answer says whether it is a fresh one."""
        fresh = self.attaches == 0
        self.attaches += 1
        self.attached = int(body["pid"]) if isinstance(body, dict) and "pid" in body else None
        self.keeper.took_over = True
        return {**(await self._state(None, {})), "fresh": fresh}

    async def _state(self, body: Any, query: dict[str, str]) -> Any:
        config = self.balancer.config
        return {
            "pid": os.getpid(),
            "started": self.started,
            "port": self.port,
            "stickiness_s": config.stickiness_s,
            "health_check_path": config.health.path,
            "daemon_restarts": self.keeper.restarts,
            "weights": self.balancer.get_weights().to_dict(),
            "tasks": self.tasks.snapshot(),
        }

    async def _put_forward(self, body: Any, query: dict[str, str]) -> Any:
        if not isinstance(body, dict) or "weights" not in body:
            raise UsageError('PUT /forward needs {"weights": {...}, "stickiness_s": S}')
        stickiness = body.get("stickiness_s")
        self.balancer.set_forward(
            weights_from_body(body["weights"]), None if stickiness is None else int(stickiness)
        )
        return {"weights": self.balancer.get_weights().to_dict()}

    async def _get_slow_start(self, body: Any, query: dict[str, str]) -> Any:
        return {"seconds": self.balancer.slow_start_s}

    async def _put_slow_start(self, body: Any, query: dict[str, str]) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("seconds"), int | float):
            raise UsageError('PUT /slow-start needs {"seconds": S}')
        self.balancer.set_slow_start(body["seconds"])
        return {"seconds": self.balancer.slow_start_s}

    async def _start_task(self, body: Any, query: dict[str, str]) -> Any:
        try:
            task = self.tasks.start(body)
        except OSError as exc:  # reported as data: the supervisor words it for the user
            return {"os_error": [exc.errno, exc.strerror, exc.filename]}
        return task.to_dict()

    async def _get_tasks(self, body: Any, query: dict[str, str]) -> Any:
        return self.tasks.snapshot()

    async def _signal_task(self, body: Any, query: dict[str, str]) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("signal"), int):
            raise UsageError('POST /tasks/{id}/signal needs {"signal": N}')
        self.tasks.signal(query["id"], body["signal"])
        return {"task_id": query["id"]}

    async def _task_output(self, body: Any, query: dict[str, str]) -> Any:
        return self.tasks.get(query["id"]).process.output_tail(int(query.get("max_chars", 600)))

    async def _register(self, body: Any, query: dict[str, str]) -> Any:
        if not isinstance(body, dict):
            raise UsageError('body must be {"group", "target_id", "host", "port"}')
        try:
            group = group_of(str(body["group"]))
            target_id, port = str(body["target_id"]), int(body["port"])
            host = str(body.get("host", "127.0.0.1"))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"invalid target: {exc}") from None
        self.balancer.register_target(group, target_id, host, port)
        self.tasks.registered(target_id)
        health = self.balancer.target_health()
        return {g: [asdict(t) for t in ts] for g, ts in health.items()}

    async def _deregister(self, body: Any, query: dict[str, str]) -> Any:
        group: Role = group_of(query["group"], status=404)
        delay = query.get("delay_s")
        self.tasks.deregistering(query["id"])
        await self.balancer.deregister_target(
            group, query["id"], delay_s=None if delay is None else float(delay)
        )
        return {"deregistered": query["id"], "group": group}


def _check_port_free(host: str, port: int) -> None:
    """OSError (EADDRINUSE) when something listens on host:port already."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's listener
        probe.bind((host, port))


def _is_dataplane(pid: int) -> bool:
    try:
        return b"canary_deploy.local.dataplane" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _bind_error(exc: OSError, options: StackOptions) -> dict[str, Any]:
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


def write_ready(fd: int | None, doc: dict[str, Any]) -> None:
    """The one JSON line the starting CLI waits for (on a descriptor it passed us)."""
    log.info("startup: %s", doc)
    if fd is not None:
        with contextlib.suppress(OSError), os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(doc) + "\n")


def run_loop(main: Any) -> None:
    """Run a coroutine on uvloop when it is installed."""
    runner: Callable[..., None] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    runner(main)


def main(argv: list[str] | None = None) -> None:
    options, ready_fd = process_options("canary_deploy.local.dataplane", argv)
    plane = DataPlane(options)
    run_loop(plane.run(lambda doc: write_ready(ready_fd, doc), ready_fd))


if __name__ == "__main__":
    main()
