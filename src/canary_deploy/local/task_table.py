"""The task processes the data plane holds (what an ECS agent runs): started, signalled
and reported on behalf of the daemon, which decides; they outlive any one daemon."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Any

from canary_deploy.backend import GROUPS, Role
from canary_deploy.balancer.admin import AdminError
from canary_deploy.errors import UsageError
from canary_deploy.local.commands import parse_image
from canary_deploy.local.processes import ProcessLauncher, TaskProcess
from canary_deploy.local.tasks import TaskState


@dataclass
class HostedTask:
    """One task process and the last state the daemon put it in, so that a daemon that
    takes over knows which tasks serve, drain or are being stopped."""

    task_id: str
    version: Role
    image: str
    process: TaskProcess
    started_at: float  # time.monotonic(): the same clock in every process of the machine
    state: TaskState = "PROVISIONING"
    killed: bool = False  # SIGKILL sent to its group: forgotten once it exited

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "version": self.version,
            "image": self.image,
            "pid": self.process.pid,
            "port": self.process.port,
            "started_at": self.started_at,
            "state": self.state,
            "exit_code": self.process.poll(),
        }


class TaskTable:
    """Task processes by id; the daemon's calls move their state along."""

    def __init__(self, launcher: ProcessLauncher) -> None:
        self.launcher = launcher
        self._tasks: dict[str, HostedTask] = {}

    def start(self, doc: Any) -> HostedTask:
        """`{"task_id", "version", "image", "port"}`: start the task's process (OSError
        when it cannot be started)."""
        if not isinstance(doc, dict):
            raise UsageError('POST /tasks needs {"task_id", "version", "image", "port"}')
        try:
            task_id, image, port = str(doc["task_id"]), str(doc["image"]), int(doc["port"])
            version = next(v for v in GROUPS if v == doc["version"])
        except (KeyError, TypeError, ValueError, StopIteration) as exc:
            raise UsageError(f"invalid task: {exc!r}") from None
        if task_id in self._tasks:
            raise UsageError(f"task {task_id} already exists")
        process = self.launcher.start(task_id, parse_image(image, role=f"{version} image"), port)
        task = HostedTask(task_id, version, image, process, started_at=time.monotonic())
        self._tasks[task_id] = task
        return task

    def get(self, task_id: str) -> HostedTask:
        task = self._tasks.get(task_id)
        if task is None:
            raise AdminError(404, f"no task {task_id}")
        return task

    def registered(self, task_id: str) -> None:
        """Its target joined its group: it serves."""
        task = self._tasks.get(task_id)
        if task is not None and task.state == "PROVISIONING":
            task.state = "RUNNING"

    def deregistering(self, task_id: str) -> None:
        task = self._tasks.get(task_id)
        if task is not None and task.state in ("PROVISIONING", "RUNNING"):
            task.state = "DRAINING"

    def signal(self, task_id: str, sig: int) -> None:
        """Signal the task's process group; SIGTERM or SIGKILL means it is being stopped."""
        task = self.get(task_id)
        if sig in (signal.SIGTERM, signal.SIGKILL):
            task.state = "STOPPING"
        task.killed = task.killed or sig == signal.SIGKILL
        task.process.signal_group(sig)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every task, after forgetting the killed ones that exited (also reaping them)."""
        for task in list(self._tasks.values()):
            if task.killed and task.process.poll() is not None:
                del self._tasks[task.task_id]
        return [t.to_dict() for t in self._tasks.values()]

    def kill_all(self) -> None:
        for task in self._tasks.values():
            task.process.signal_group(signal.SIGKILL)
            task.process.poll()
        self._tasks.clear()
