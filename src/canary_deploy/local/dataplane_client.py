"""The data plane as the daemon sees it: the listener, the target registry and the task
launcher the supervisor and the admin routes use, each one call on the data plane's
socket (the daemon is not on the request path: no request goes through it)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from canary_deploy.backend import GROUPS, Role
from canary_deploy.balancer import BalancerConfig, TargetHealth
from canary_deploy.balancer.admin import AdminClient, Window, totals_from_json
from canary_deploy.balancer.metrics import WindowStats
from canary_deploy.errors import UsageError
from canary_deploy.local.commands import TaskCommand
from canary_deploy.local.metrics import AdminMetrics
from canary_deploy.local.options import StackOptions
from canary_deploy.local.processes import free_port
from canary_deploy.local.tasks import HealthState
from canary_deploy.routes import TesterRoute, routes_from_list
from canary_deploy.weights import Weights

SNAPSHOT_TTL_S = 0.1  # one GET /tasks answers every task's poll() of one reconcile


class DataPlaneClient:
    """Calls on the data plane's socket."""

    def __init__(self, socket_path: Path) -> None:
        self.admin = AdminClient(socket_path, timeout_s=30)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        return self.admin.request(method, path, body)

    async def request_async(self, method: str, path: str, body: Any = None) -> Any:
        """For the calls that wait (a drain): the daemon's loop goes on meanwhile."""
        return await asyncio.to_thread(self.admin.request, method, path, body)


class RemoteMetrics(AdminMetrics):
    """The balancer's metric buckets (`MetricsSource`), read from the data plane."""

    def __init__(self, client: DataPlaneClient) -> None:
        super().__init__(lambda method, path: client.request(method, path))
        self.client = client

    def export_buckets(self, since: float) -> list[dict[str, Any]]:
        buckets: list[dict[str, Any]] = self.client.request("GET", f"/buckets?since={since}")
        return buckets

    def tester_requests(self, start: float, end: float) -> dict[Role, int]:
        doc = self.client.request("GET", f"/tester-requests?{Window(start, end).query()}")
        return {v: int(doc.get(v, 0)) for v in GROUPS}

    def totals(self) -> dict[Role, WindowStats]:
        """What each group served since the data plane started."""
        return totals_from_json(self.client.request("GET", "/totals"))

    def rejections(self) -> dict[str, int]:
        return dict(self.client.request("GET", "/rejections"))


class RemoteListener:
    """The data plane's balancer (`Listener`): its setup is fixed when the data plane
    starts and read once; weights, health and metrics are read live."""

    def __init__(self, client: DataPlaneClient, options: StackOptions, state: Any) -> None:
        self.client = client
        self.port = int(state["port"])
        configured = StackOptions(
            options.state_dir,
            host=options.host,
            port=self.port,
            health_profile=options.health_profile,
            deregistration_delay_s=options.deregistration_delay_s,
            health_check_path=state["health_check_path"],
            stickiness_s=state["stickiness_s"],
        )
        self._config = configured.balancer_config(None, Weights.from_dict(state["weights"]))
        self._metrics = RemoteMetrics(client)

    @property
    def config(self) -> BalancerConfig:
        return self._config

    @property
    def metrics(self) -> RemoteMetrics:
        return self._metrics

    @property
    def slow_start_s(self) -> float:
        return float(self.client.request("GET", "/slow-start")["seconds"])

    def get_weights(self) -> Weights:
        return Weights.from_dict(self.client.request("GET", "/weights"))

    def set_forward(self, weights: Weights, stickiness_s: int | None) -> None:
        body = {"weights": weights.to_dict(), "stickiness_s": stickiness_s}
        self.client.request("PUT", "/forward", body)

    def set_slow_start(self, seconds: float) -> None:
        self.client.request("PUT", "/slow-start", {"seconds": seconds})

    def target_health(self) -> dict[Role, list[TargetHealth]]:
        doc = self.client.request("GET", "/targets")
        return {v: [TargetHealth(**t) for t in doc.get(v, [])] for v in GROUPS}

    def get_rules(self) -> list[TesterRoute]:
        return routes_from_list(self.client.request("GET", "/rules"))

    def set_rules(self, routes: list[TesterRoute]) -> None:
        self.client.request("PUT", "/rules", [r.to_dict() for r in routes])


class RemoteRegistry:
    """The supervisor's `TargetRegistry`: target groups live in the data plane."""

    def __init__(self, client: DataPlaneClient) -> None:
        self.client = client

    def register_target(self, group: Role, target_id: str, host: str, port: int) -> None:
        body = {"group": group, "target_id": target_id, "host": host, "port": port}
        self.client.request("POST", "/targets", body)

    async def deregister_target(
        self, group: Role, target_id: str, *, delay_s: float | None = None
    ) -> None:
        path = f"/targets/{group}/{quote(target_id)}"
        if delay_s is not None:
            path += f"?delay_s={delay_s}"
        await self.client.request_async("DELETE", path)

    def target_states(self) -> dict[str, HealthState]:
        doc = self.client.request("GET", "/targets")
        return {t["target_id"]: t["state"] for targets in doc.values() for t in targets}


class RemoteLauncher:
    """The supervisor's `Launcher`: task processes are the data plane's children, so they
    outlive the daemon. Polls of one reconcile share one snapshot of the tasks."""

    def __init__(self, client: DataPlaneClient, host: str) -> None:
        self.client = client
        self.host = host
        self._snapshot: dict[str, dict[str, Any]] = {}
        self._snapshot_at = -1.0

    def free_port(self) -> int:
        return free_port(self.host)

    def start(self, task_id: str, command: TaskCommand, port: int) -> RemoteTask:
        role = task_id.split("-", 1)[0]
        body = {"task_id": task_id, "version": role, "image": command.image, "port": port}
        doc = self.client.request("POST", "/tasks", body)
        if "os_error" in doc:
            raise OSError(*doc["os_error"])
        self._snapshot[task_id] = doc
        return self.handle(doc)

    def handle(self, doc: dict[str, Any]) -> RemoteTask:
        """The handle of a task the data plane reports (a started or a taken-over one)."""
        return RemoteTask(self, str(doc["task_id"]), int(doc["pid"]), int(doc["port"]))

    def tasks(self) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = self.client.request("GET", "/tasks")
        self._snapshot = {d["task_id"]: d for d in docs}
        self._snapshot_at = time.monotonic()
        return docs

    def invalidate(self) -> None:
        """The next poll() reads the tasks again (a signal was sent)."""
        self._snapshot_at = -1.0

    def exit_code(self, task_id: str) -> int | None:
        if time.monotonic() - self._snapshot_at > SNAPSHOT_TTL_S:
            self.tasks()
        doc = self._snapshot.get(task_id)
        # Gone from the data plane: it was killed and reaped.
        return -signal.SIGKILL if doc is None else doc["exit_code"]


class RemoteTask:
    """A task process in the data plane (`TaskHandle`)."""

    def __init__(self, launcher: RemoteLauncher, task_id: str, pid: int, port: int) -> None:
        self.launcher = launcher
        self.task_id = task_id
        self.pid = pid
        self.port = port

    def poll(self) -> int | None:
        return self.launcher.exit_code(self.task_id)

    def signal_group(self, sig: int) -> None:
        path = f"/tasks/{quote(self.task_id)}/signal"
        # Already gone (404): like signalling a process group that no longer exists.
        with contextlib.suppress(UsageError):
            self.launcher.client.request("POST", path, {"signal": int(sig)})
        self.launcher.invalidate()

    def output_tail(self, max_chars: int = 600) -> str:
        path = f"/tasks/{quote(self.task_id)}/output?max_chars={max_chars}"
        try:
            return str(self.launcher.client.request("GET", path))
        except UsageError:
            return ""
