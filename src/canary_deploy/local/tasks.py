"""The supervisor's bookkeeping: tasks, per-service records, and the seams it drives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from canary_deploy.backend import Role
from canary_deploy.local.commands import TaskCommand

TaskState = Literal["PROVISIONING", "RUNNING", "DRAINING", "STOPPING"]
HealthState = Literal["initial", "healthy", "unhealthy", "draining"]


class TaskHandle(Protocol):
    """A started task process."""

    pid: int
    port: int

    def poll(self) -> int | None: ...

    def signal_group(self, sig: int) -> None: ...

    def output_tail(self, max_chars: int = 600) -> str: ...


class Launcher(Protocol):
    """Starts task processes (real ones in the daemon, fakes in tests)."""

    def free_port(self) -> int: ...

    def start(self, task_id: str, command: TaskCommand, port: int) -> TaskHandle: ...


class TargetRegistry(Protocol):
    """The part of the balancer the services use (target group membership and health)."""

    def register_target(self, group: Role, target_id: str, host: str, port: int) -> None: ...

    async def deregister_target(
        self, group: Role, target_id: str, *, delay_s: float | None = None
    ) -> None: ...

    def target_states(self) -> dict[str, HealthState]:
        """Health state per registered target id."""
        ...


Probe = Callable[[str, int], Awaitable[bool]]


async def tcp_probe(host: str, port: int) -> bool:
    """True when something accepts connections on host:port."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@dataclass(frozen=True)
class ServiceSpec:
    image: str
    desired_count: int


@dataclass
class Task:
    task_id: str
    version: Role
    image: str
    process: TaskHandle
    started_at: float
    state: TaskState = "PROVISIONING"
    generation: int = (
        0  # its service's generation when it started (see `restart` in Supervisor.apply)
    )


@dataclass
class ServiceRecord:
    """What the supervisor keeps per service: spec, failure streak and backoff, generation."""

    version: Role
    spec: ServiceSpec | None = None
    command: TaskCommand | None = None
    failures: int = 0  # consecutive tasks that failed to start or exited early
    next_start_at: float = 0.0
    last_failure: str | None = None
    generation: int = 0  # bumped by a restart: tasks of older generations are replaced

    def is_current(self, task: Task) -> bool:
        """Started from the current spec: its image, since the last restart."""
        return (
            self.spec is not None
            and task.image == self.spec.image
            and task.generation == self.generation
        )


@dataclass(frozen=True)
class TaskInfo:
    """A task as the admin API reports it."""

    task_id: str
    version: Role
    image: str
    pid: int
    port: int
    state: TaskState
    health: str | None


def is_live(task: Task) -> bool:
    return task.state in ("PROVISIONING", "RUNNING")


def tail_note(process: TaskHandle, max_chars: int = 400) -> str:
    """The last line the task printed, as a clause for an error or an event."""
    text = process.output_tail(max_chars)
    lines = [line for line in text.splitlines() if line.strip()]
    return f"; its output ends with: {lines[-1].strip()}" if lines else ""
