"""`Supervisor`: ECS-like services that keep each version's task processes running.

Tasks are registered with their target group, replaced when they exit, and rolled when
the image changes or a restart is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from canary_deploy.backend import GROUPS, Role, ServiceStatus
from canary_deploy.errors import UsageError
from canary_deploy.local.commands import TaskCommand, parse_image
from canary_deploy.local.tasks import (
    HealthState,
    Launcher,
    Probe,
    ServiceRecord,
    ServiceSpec,
    TargetRegistry,
    Task,
    TaskInfo,
    is_live,
    tail_note,
    tcp_probe,
)

CRASH_LOOP_AFTER = 3  # consecutive failed tasks before a service is reported crash-looping

EventSink = Callable[[str, Role | None, str], None]


@dataclass(frozen=True)
class SupervisorConfig:
    host: str = "127.0.0.1"
    startup_timeout_s: float = 20.0  # a task that never listens is killed and counts as failed
    stop_timeout_s: float = 5.0  # SIGTERM, then SIGKILL after this
    deregistration_delay_s: float = 5.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    stable_after_s: float = 10.0  # a task that lived this long resets the failure streak


@dataclass
class Supervisor:
    """Reconciles the services toward their specs; call `reconcile()` periodically."""

    launcher: Launcher
    registry: TargetRegistry
    config: SupervisorConfig = field(default_factory=SupervisorConfig)
    on_event: EventSink = lambda kind, version, message: None
    probe: Probe = tcp_probe
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._services = {v: ServiceRecord(v) for v in GROUPS}
        self._tasks: dict[str, Task] = {}
        self._background: set[asyncio.Task[None]] = set()

    # ---- desired state

    async def apply(
        self,
        specs: dict[Role, ServiceSpec],
        *,
        trial: bool = True,
        restart: Collection[Role] = (),
    ) -> list[str]:
        """Adopt new specs. With `trial`, a new image is first tried with one task: if it
        exits or never listens, UsageError is raised and nothing changes.

        Each service in `restart` replaces all its tasks with fresh ones (ECS's "force
        new deployment"), rolling like an image change: the new tasks start at the next
        reconcile, together with any other service's new tasks, and an old one stops
        once a healthy new one stands in for it. Returns the ids of the tasks replaced."""
        commands = {v: parse_image(s.image, role=f"{v} image") for v, s in specs.items()}
        new_images = [
            v
            for v, spec in specs.items()
            if trial and spec.desired_count > 0 and _image_of(self._services[v].spec) != spec.image
        ]
        # Both versions boot at once: a fresh deploy waits for the slower one, not the sum.
        results = await asyncio.gather(
            *(self._trial(v, commands[v]) for v in new_images), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            for result in results:
                if isinstance(result, Task):
                    await self._stop_task(result, drain=False)
            raise failures[0]
        replaced: list[str] = []
        for version, spec in specs.items():
            svc = self._services[version]
            if svc.spec is None or svc.spec.image != spec.image:
                svc.failures, svc.next_start_at, svc.last_failure = 0, 0.0, None
            if svc.spec != spec:
                self.on_event("service", version, f"desired {spec.desired_count} x {spec.image}")
            if version in restart:
                replaced += [
                    t.task_id for t in self._tasks.values() if t.version == version and is_live(t)
                ]
                svc.generation += 1
                self.on_event("service", version, "restart: every task is replaced")
            svc.spec, svc.command = spec, commands[version]
        for result in results:
            if isinstance(result, Task):  # a tried task is a current one: adopt it
                result.generation = self._services[result.version].generation
                self._tasks[result.task_id] = result
        return replaced

    async def _trial(self, version: Role, command: TaskCommand) -> Task:
        # Not in self._tasks until adopted: the control loop must not reap or replace it.
        try:
            task = self._start_task(version, command, adopt=False)
        except OSError as exc:
            raise UsageError(
                f"{version} image {command.image!r} cannot start: {exc.strerror}"
                + (f": {exc.filename}" if exc.filename else ""),
                hint="check that the command exists and is executable; nothing was changed",
            ) from None
        deadline = self.clock() + self.config.startup_timeout_s
        while task.state == "PROVISIONING":
            code = task.process.poll()
            if code is not None:
                task.process.signal_group(signal.SIGKILL)
                raise UsageError(
                    f"{version} image {command.image!r} exited at once with code {code}"
                    + tail_note(task.process),
                    hint="run the command by hand with PORT set to check it; nothing was changed",
                )
            if self.clock() >= deadline:
                await self._stop_task(task, drain=False)
                raise UsageError(
                    f"{version} image {command.image!r} did not listen on its $PORT within "
                    f"{self.config.startup_timeout_s:.0f} s" + tail_note(task.process),
                    hint="the command must serve HTTP on 127.0.0.1:$PORT; nothing was changed",
                )
            await self._check_listening(task)
            if task.state == "PROVISIONING":
                await asyncio.sleep(0.05)
        return task

    def adopt(self, task: Task) -> None:
        """Take over a task another daemon started (the data plane kept it running); a
        stop that daemon had begun is finished (a drain waits for its requests again)."""
        self._tasks[task.task_id] = task
        if task.state in ("DRAINING", "STOPPING"):
            drain = task.state == "DRAINING"
            task.state = "RUNNING" if drain else "PROVISIONING"
            self._stop_in_background(task, "", drain=drain)

    # ---- the control loop

    async def run(self, interval_s: float = 0.25) -> None:
        while True:
            await self.reconcile()
            await asyncio.sleep(interval_s)

    async def reconcile(self) -> None:
        """One step: reap exited tasks, promote listening ones, start, stop and roll."""
        now = self.clock()
        for task in list(self._tasks.values()):
            code = task.process.poll()
            if code is not None and task.state in ("PROVISIONING", "RUNNING"):
                self._task_failed(task, f"exited with code {code}", now)
            elif task.state == "PROVISIONING":
                if now - task.started_at > self.config.startup_timeout_s:
                    self._task_failed(task, "never listened on its port", now)
                else:
                    await self._check_listening(task)
        health = self.registry.target_states()
        for svc in self._services.values():
            self._reconcile_service(svc, health, now)

    def _reconcile_service(
        self, svc: ServiceRecord, health: dict[str, HealthState], now: float
    ) -> None:
        if svc.spec is None or svc.command is None:
            return
        live = [t for t in self._tasks.values() if t.version == svc.version and is_live(t)]
        current = [t for t in live if svc.is_current(t)]
        old = [t for t in live if not svc.is_current(t)]
        desired = svc.spec.desired_count
        if svc.failures and any(
            t.state == "RUNNING" and now - t.started_at >= self.config.stable_after_s
            for t in current
        ):
            svc.failures = 0  # a task has stayed up: the service is no longer crash-looping
        missing = desired - len(current)
        if missing > 0 and now >= svc.next_start_at:
            for _ in range(missing):
                self._start_task(svc.version, svc.command, generation=svc.generation)
        elif missing < 0:
            # Scale in: provisioning tasks first, then the newest.
            extra = sorted(current, key=lambda t: (t.state != "PROVISIONING", -t.started_at))
            for task in extra[:-missing]:
                self._stop_in_background(task, "scale in")
        # Rolling replacement (ECS minimum healthy 100%, maximum 200%): stop an old task
        # only when a healthy new one stands in for it.
        healthy_new = sum(1 for t in current if health.get(t.task_id) == "healthy")
        surplus = len(old) + healthy_new - desired
        for task in sorted(old, key=lambda t: t.state != "PROVISIONING")[: max(0, surplus)]:
            self._stop_in_background(task, "replaced by a new task")

    # ---- task lifecycle

    def _start_task(
        self, version: Role, command: TaskCommand, *, adopt: bool = True, generation: int = 0
    ) -> Task:
        task_id = f"{version}-{uuid.uuid4().hex[:8]}"
        port = self.launcher.free_port()
        process = self.launcher.start(task_id, command, port)
        task = Task(
            task_id, version, command.image, process, started_at=self.clock(), generation=generation
        )
        if adopt:
            self._tasks[task_id] = task
        self.on_event("task", version, f"started {task_id} (pid {process.pid}, port {port})")
        return task

    async def _check_listening(self, task: Task) -> None:
        if await self.probe(self.config.host, task.process.port):
            task.state = "RUNNING"
            self.registry.register_target(
                task.version, task.task_id, self.config.host, task.process.port
            )
            self.on_event("task", task.version, f"{task.task_id} listening; registered")

    def _task_failed(self, task: Task, why: str, now: float) -> None:
        svc = self._services[task.version]
        lived = now - task.started_at
        svc.failures = 1 if lived >= self.config.stable_after_s else svc.failures + 1
        delay = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (svc.failures - 1))
        svc.next_start_at = now + delay
        svc.last_failure = f"{task.task_id} {why} after {lived:.1f} s"
        self.on_event("task-failed", task.version, svc.last_failure + tail_note(task.process, 200))
        self._stop_in_background(task, why, drain=False)

    def _stop_in_background(self, task: Task, why: str, *, drain: bool = True) -> None:
        if task.state in ("DRAINING", "STOPPING"):
            return
        if why and task.process.poll() is None:
            self.on_event("task", task.version, f"stopping {task.task_id}: {why}")
        job = asyncio.ensure_future(self._stop_task(task, drain=drain))
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def _stop_task(self, task: Task, *, drain: bool) -> None:
        registered = task.state == "RUNNING"
        task.state = "DRAINING"
        try:
            if registered:
                delay = self.config.deregistration_delay_s if drain else 0.0
                # An adopted drain may have ended already: its target is gone.
                with contextlib.suppress(UsageError):
                    await self.registry.deregister_target(task.version, task.task_id, delay_s=delay)
            task.state = "STOPPING"
            task.process.signal_group(signal.SIGTERM)
            deadline = self.clock() + self.config.stop_timeout_s
            while task.process.poll() is None and self.clock() < deadline:
                await asyncio.sleep(0.05)
        finally:
            # Always the whole group, also when the leader already exited (its children).
            task.process.signal_group(signal.SIGKILL)
            self._tasks.pop(task.task_id, None)

    async def stop_all(self, *, drain: bool = False) -> None:
        """Stop every task (daemon shutdown, delete)."""
        for svc in self._services.values():
            svc.spec = None
        pending: list[Awaitable[None]] = [j for j in self._background if not j.done()]
        pending += [self._stop_task(t, drain=drain) for t in list(self._tasks.values())]
        await asyncio.gather(*pending, return_exceptions=True)

    # ---- reporting

    def describe(self) -> dict[Role, ServiceStatus]:
        health = self.registry.target_states()
        return {v: self._describe(svc, health) for v, svc in self._services.items()}

    def _describe(self, svc: ServiceRecord, health: dict[str, HealthState]) -> ServiceStatus:
        tasks = [t for t in self._tasks.values() if t.version == svc.version]
        running = sum(1 for t in tasks if t.state == "RUNNING")
        pending = sum(1 for t in tasks if t.state == "PROVISIONING")
        name = f"app-{svc.version}"
        if svc.spec is None:
            return ServiceStatus(name, running, pending, 0, "INACTIVE")
        current = [t for t in tasks if svc.is_current(t) and is_live(t)]
        healthy = sum(1 for t in current if health.get(t.task_id) == "healthy")
        message = None
        if svc.failures >= CRASH_LOOP_AFTER:
            state = "crash-looping"
            wait = max(0.0, svc.next_start_at - self.clock())
            message = f"{svc.failures} tasks failed in a row; last: {svc.last_failure}"
            message += f"; next try in {wait:.0f} s" if wait >= 1 else ""
        elif len(tasks) == len(current) == healthy == svc.spec.desired_count:
            state = "COMPLETED"
        else:
            state = "IN_PROGRESS"
            if svc.last_failure and svc.failures:
                message = f"last failure: {svc.last_failure}"
        return ServiceStatus(name, running, pending, svc.spec.desired_count, state, message)

    def tasks(self) -> list[TaskInfo]:
        health = self.registry.target_states()
        return [
            TaskInfo(
                t.task_id,
                t.version,
                t.image,
                t.process.pid,
                t.process.port,
                t.state,
                health.get(t.task_id),
            )
            for t in self._tasks.values()
        ]

    def specs(self) -> dict[Role, ServiceSpec]:
        return {v: s.spec for v, s in self._services.items() if s.spec is not None}


def _image_of(spec: ServiceSpec | None) -> str | None:
    return None if spec is None else spec.image
