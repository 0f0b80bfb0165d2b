"""`LocalTarget`: the `Target` lifecycle (deploy, status, delete) over the local daemon."""

from __future__ import annotations

import shutil
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from canary_deploy.backend import (
    GROUPS,
    SEED_GROUPS,
    ListenerStatus,
    MetricsSource,
    Progress,
    ReleaseSpec,
    Role,
    RoleStatus,
    ServiceStatus,
    Status,
    TargetGroupStatus,
    TaskDefinitionStatus,
    TesterRouter,
    TrafficRouter,
    Workload,
    shown_in_status,
)
from canary_deploy.config import Settings
from canary_deploy.errors import NothingToDelete, OperationFailed
from canary_deploy.local.commands import parse_image
from canary_deploy.local.control import Listen
from canary_deploy.local.metrics import LocalMetrics
from canary_deploy.local.paths import StackPaths
from canary_deploy.local.report import DaemonStatus
from canary_deploy.local.router import LocalRouter, LocalRoutes
from canary_deploy.local.stack import LocalStack
from canary_deploy.local.statedb import DB_NAME, damage, move_aside
from canary_deploy.local.store import StateStore, spec_to_dict
from canary_deploy.local.workload import LocalWorkload
from canary_deploy.preview import Preview, spec_changes
from canary_deploy.routes import route_notes
from canary_deploy.weights import Weights


@dataclass(frozen=True)
class StateRepair:
    """What `canary repair` found and did."""

    path: Path
    problem: str | None  # None: the database is sound, nothing was done
    moved_to: Path | None = None
    rebuilt_by_daemon: bool = False


class LocalTarget:
    """The whole local stack: ALB-like balancer and ECS-like services in one daemon."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stack = LocalStack(settings)
        self.router: TrafficRouter = LocalRouter(self.stack)
        self._workload = LocalWorkload(self.stack)
        self.workload: Workload = self._workload
        self.metrics: MetricsSource = LocalMetrics(self.stack)
        self.routes: TesterRouter = LocalRoutes(self.stack)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalTarget:
        return cls(settings)

    @property
    def paths(self) -> StackPaths:
        return self.stack.paths

    def deploy(self, spec: ReleaseSpec, progress: Progress) -> None:
        """Start the daemon if needed (like `docker compose up -d`) and apply the spec; a
        running stack is updated in place and keeps its live weights."""
        for role in SEED_GROUPS:
            parse_image(spec.image(role), role=f"{role} image")  # fail before any change
        control = self.stack.control
        fresh = not self.paths.state_dir.exists()
        started = False
        try:
            started = self._ensure_daemon(spec, progress)
            progress.update("starting tasks")
            result = control.request("PUT", "/spec", spec_to_dict(spec))
        except Exception:
            if started and self.stack.stored_spec() is None:
                control.stop(forget=True)  # a failed first deploy leaves nothing running
            if fresh:
                shutil.rmtree(self.paths.state_dir, ignore_errors=True)  # ...nor any file
            raise
        progress.log(f"Listener weights {Weights.from_dict(result['weights'])}")
        self._workload.wait_steady(SEED_GROUPS, progress)

    def preview(self, spec: ReleaseSpec, progress: Progress) -> Preview:
        """What `deploy(spec)` would change in the running stack's spec; nothing starts."""
        for role in SEED_GROUPS:
            parse_image(spec.image(role), role=f"{role} image")
        current = self.deployed_spec()
        name = self.settings.stack_name
        if current is None:
            return Preview("local", name, "create", spec_changes(None, spec))
        kept = "the listener keeps its live weights (a deploy does not change them)"
        return Preview("local", name, "update", spec_changes(current, spec), notes=(kept,))

    def _ensure_daemon(self, spec: ReleaseSpec, progress: Progress) -> bool:
        """Start the daemon unless it runs; True when this call started it."""
        control = self.stack.control
        if control.running():
            running = DaemonStatus.from_dict(control.request("GET", "/status"))
            changed = []
            listener_config = (running.health_check_path, running.stickiness_seconds)
            if listener_config != (spec.health_check_path, spec.stickiness_seconds):
                changed.append("health check / stickiness")
            # (A daemon from before the metrics port reports none: it serves none.) A port
            # it could not bind is tried again.
            if running.metrics_port != self.settings.local.metrics_port or running.metrics_error:
                changed.append("metrics port")
            if not changed:
                progress.log(f"Updating the running local stack (listener {running.url})")
                return False
            # The stack fixes these at start: restart it (tasks restart, state is kept)
            # on the same address, also when it was picked with port 0.
            progress.log(f"Restarting the local stack for the new {' and '.join(changed)}")
            control.stop(forget=False)
            address = urlsplit(running.url)
            listen = Listen(address.hostname or "127.0.0.1", address.port or 0)
            args = replace(self.stack.daemon_args(spec), listen=listen)
        else:
            # After a crash the stack comes back on its old address (clients point there);
            # `delete` forgets it, so a fresh deploy uses --listen / CANARY_LISTEN.
            stored_spec, listener = self.stack.stored()
            args = self.stack.daemon_args(spec, listener if stored_spec else None)
        progress.update(f"starting the local stack daemon ({args.listen})")
        doc = control.start(args)
        progress.log(f"Local listener on {doc['url']}")
        return True

    def status(self) -> Status:
        doc = self.stack.daemon_status()
        if doc is None:
            return self._stopped_status()
        spec = doc.spec
        listener = ListenerStatus(
            url=doc.url,
            weights=doc.weights,
            stickiness_seconds=doc.stickiness_seconds,
            configured_weights=doc.stored_weights,
        )
        notes: list[str] = []
        roles: dict[Role, RoleStatus] = {}
        for v, service in doc.services.items():
            tg = doc.target_groups.get(v, TargetGroupStatus(name=f"tg-{v}"))
            if not shown_in_status(v, service, listener.weights.of(v), tg):
                continue  # the baseline: shown only during a rollout
            if tg.unhealthy and not tg.healthy:
                notes.append(
                    f"every {v} target is unhealthy: the balancer fails open and still "
                    "routes to them (as ALB does)"
                )
            roles[v] = RoleStatus(
                task_definition=None
                if spec is None
                else TaskDefinitionStatus(image=spec.image(v), container_port=spec.container_port),
                service=service,
                target_group=tg,
                traffic=doc.traffic.get(v),
            )
        states = {s.service.deployment_state for s in roles.values() if s.service}
        stack_status = (
            "NOT_DEPLOYED"
            if spec is None
            else "DEGRADED"
            if "crash-looping" in states
            else "RUNNING"
            if states <= {"COMPLETED"}
            else "UPDATING"
        )
        notes.extend(route_notes(doc.rules))
        notes += _metrics_notes(doc)
        notes.append(f"state {self.paths.state_dir} (daemon pid {doc.pid})")
        return Status(
            self.name, self.settings.stack_name, stack_status, listener, roles, tuple(notes)
        )

    def _stopped_status(self) -> Status:
        spec = self.stack.stored_spec()
        if spec is None:
            raise OperationFailed(
                f"no local stack in {self.paths.state_dir}",
                hint="run `canary deploy` first (or pass the --state-dir it used)",
            )
        roles = {
            v: RoleStatus(
                task_definition=TaskDefinitionStatus(
                    image=spec.image(v), container_port=spec.container_port
                ),
                service=ServiceStatus(f"app-{v}", 0, 0, spec.desired_count(v), "STOPPED"),
                target_group=None,
            )
            for v in GROUPS
            if v != "baseline" or spec.desired_count_baseline
        }
        note = (
            "the local stack daemon is not running (stopped or crashed); `canary deploy`, "
            "`set-weights` or `rollback` restart it with the stored spec and weights"
        )
        return Status(self.name, self.settings.stack_name, "STOPPED", None, roles, (note,))

    def delete(self, progress: Progress, *, purge: bool = False) -> None:
        """Stop the daemon and every task, and remove the tasks' logs. History (events,
        metrics) stays unless purge."""
        had_spec = self.stack.stored_spec() is not None
        progress.update("stopping the local stack")
        was_running = self.stack.control.stop(forget=True)
        if not was_running and had_spec:
            with closing(StateStore(self.paths.state_dir)) as store:
                store.clear_spec()
        if not (was_running or had_spec or (purge and self.paths.state_dir.exists())):
            raise NothingToDelete(
                f"no local stack in {self.paths.state_dir}",
                hint="if it runs elsewhere, pass the --state-dir it was deployed with",
            )
        # The tasks are gone: so is their output (events and metrics stay, as history).
        shutil.rmtree(self.paths.task_logs, ignore_errors=True)
        if purge and self.paths.state_dir.exists():
            shutil.rmtree(self.paths.state_dir)
            progress.log(f"Removed {self.paths.state_dir}")

    def deployed_spec(self) -> ReleaseSpec | None:
        return self.stack.stored_spec()

    def repair_state(self) -> StateRepair:
        """A damaged state database moved aside: the running daemon writes it anew from
        what it holds; with no daemon, the next `deploy` starts afresh."""
        path = self.paths.state_dir / DB_NAME
        if not path.exists():
            raise OperationFailed(
                f"no local state database in {self.paths.state_dir}",
                hint="nothing to repair; pass the --state-dir the stack was deployed with",
            )
        if self.stack.control.running():
            doc = self.stack.control.request("POST", "/state/rebuild")
            moved = None if doc["moved_to"] is None else Path(doc["moved_to"])
            return StateRepair(path, doc["problem"], moved, rebuilt_by_daemon=moved is not None)
        problem = damage(path)
        if problem is None:
            return StateRepair(path, None)
        return StateRepair(path, problem, move_aside(path))


def _metrics_notes(doc: DaemonStatus) -> list[str]:
    """Where Prometheus scrapes the stack's metrics (`[local] metrics_port`), or why not."""
    if doc.metrics_url:
        return [f"Prometheus metrics on {doc.metrics_url}"]
    if doc.metrics_error:
        return [
            f"{doc.metrics_error}: choose another [local] metrics_port "
            "(CANARY_METRICS_PORT) and run `canary deploy` (it restarts the stack)"
        ]
    return []
