"""`LocalTarget`: the `Target` Protocol over the local stack daemon (router, workload,
metrics and the deploy/status/delete lifecycle), all through its admin socket."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from canary_deploy.backend import (
    GROUPS,
    VERSIONS,
    ListenerStatus,
    MetricsSource,
    Progress,
    ReleaseSpec,
    ServiceStatus,
    Status,
    TargetGroupStatus,
    TaskDefinitionStatus,
    TrafficRouter,
    TrafficStatus,
    Version,
    VersionCounts,
    VersionStatus,
    Workload,
)
from canary_deploy.config import Settings
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.local.commands import parse_image
from canary_deploy.local.control import DaemonArgs, DaemonControl, Listen
from canary_deploy.local.paths import StackPaths
from canary_deploy.local.store import StateStore, spec_from_dict, spec_to_dict
from canary_deploy.weights import Weights

STEADY_TIMEOUT_S = {"fast": 60.0, "alb": 600.0}


class LocalStack:
    """The daemon of one state directory; restarts it when a spec is stored but it died."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = StackPaths.for_dir(settings.local.state_dir)
        self.control = DaemonControl(self.paths)

    def stored(self) -> tuple[ReleaseSpec | None, Listen | None]:
        """The desired spec and the last listener address, from the state directory."""
        if not (self.paths.state_dir / "state.db").exists():
            return None, None
        store = StateStore(self.paths.state_dir)
        try:
            spec, listener = store.load_spec(), store.load_listener()
        finally:
            store.close()
        return spec, None if listener is None else Listen(*listener)

    def stored_spec(self) -> ReleaseSpec | None:
        return self.stored()[0]

    def daemon_args(self, spec: ReleaseSpec | None, listen: Listen | None = None) -> DaemonArgs:
        return DaemonArgs(
            listen=listen or Listen.parse(self.settings.local.listen),
            health_profile=self.settings.local.health_profile,
            deregistration_delay_s=self.settings.local.deregistration_delay_s,
            health_check_path=None if spec is None else spec.health_check_path,
            stickiness_s=None if spec is None else spec.stickiness_seconds,
        )

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One admin call; a crashed daemon with a stored spec is restarted first (it
        restores spec and weights), so `rollback` works even after a crash."""
        if not self.control.running():
            spec, listener = self.stored()
            if spec is None:
                raise OperationFailed(
                    f"no local stack in {self.paths.state_dir}",
                    hint="run `canary deploy` first (or pass the --state-dir it used)",
                )
            self.control.start(self.daemon_args(spec, listener))
        return self.control.request(method, path, body)


class LocalRouter:
    """The listener's weights, read from and written to the balancer itself."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def get_weights(self) -> Weights:
        return Weights.from_dict(self.stack.request("GET", "/weights"))

    def set_weights(self, weights: Weights) -> None:
        """All three groups' weights in one admin call (one listener change)."""
        self.stack.request("PUT", "/weights", weights.to_dict())

    def verify_weights(self, weights: Weights) -> bool:
        return self.get_weights() == weights


class LocalWorkload:
    """The stable, canary and baseline services of task processes."""

    def __init__(self, stack: LocalStack, read_status: Callable[[], Status]) -> None:
        self.stack = stack
        self.read_status = read_status

    def describe_services(self) -> dict[Version, ServiceStatus]:
        doc = self.stack.request("GET", "/services")
        return {v: ServiceStatus(**doc[v]) for v in GROUPS if v in doc}

    def _spec(self) -> ReleaseSpec:
        doc = self.stack.request("GET", "/spec")
        if doc is None:
            raise OperationFailed("the local stack has no spec", hint="run `canary deploy`")
        return spec_from_dict(doc)

    def promote(self, progress: Progress) -> None:
        spec = self._spec()
        progress.log(f"Promoting: stable becomes {spec.image_canary}")
        self.stack.request(
            "PUT", "/spec", spec_to_dict(replace(spec, image_stable=spec.image_canary))
        )
        timeout = STEADY_TIMEOUT_S[self.stack.settings.local.health_profile]
        wait_steady(self.read_status, progress, ("stable",), timeout)

    def scale_canary(self, desired_count: int) -> None:
        spec = replace(self._spec(), desired_count_canary=desired_count)
        self.stack.request("PUT", "/spec", spec_to_dict(spec))

    def start_baseline(self, desired_count: int, progress: Progress) -> None:
        """One daemon call starts `desired_count` baseline tasks (stable's image) and fresh
        canary tasks replacing the running ones, in the same step; then wait until the new
        tasks of both groups are healthy (the replaced canary tasks drain meanwhile).

        Every call restarts the canary's tasks. On the fast health profile this takes
        about 1-2 s (start, listen, one passing health check)."""
        if desired_count < 1:
            raise UsageError(f"a baseline needs at least 1 task, got {desired_count}")
        progress.log(f"Starting {desired_count} baseline task(s) and restarting the canary's")
        doc = self.stack.request("PUT", "/baseline", {"desired_count": desired_count})
        timeout = STEADY_TIMEOUT_S[self.stack.settings.local.health_profile]
        wait_fresh_healthy(
            lambda: self.stack.request("GET", "/tasks"),
            self.describe_services,
            {"canary": self._spec().desired_count_canary, "baseline": desired_count},
            set(doc["replaced"]),
            progress,
            timeout,
        )

    def stop_baseline(self) -> None:
        """Baseline desired count 0: its tasks drain and stop (the daemon refuses while the
        baseline still has weight). Returns without waiting for them to exit."""
        self.stack.request("PUT", "/baseline", {"desired_count": 0})


class LocalMetrics:
    """Per-target-group counts and quantiles recorded by the balancer."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def counts(
        self, start: float, end: float, thresholds_s: Sequence[float] = ()
    ) -> dict[Version, VersionCounts]:
        query = {"start": start, "end": end, "thresholds": ",".join(map(str, thresholds_s))}
        doc = self.stack.request("GET", "/counts?" + urlencode(query))
        return {
            v: VersionCounts(int(c["requests"]), int(c["errors"]), tuple(c.get("slower_than", ())))
            for v, c in doc.items()
            if v in GROUPS
        }

    def quantiles(
        self, version: Version, start: float, end: float, qs: Sequence[float]
    ) -> tuple[float | None, ...]:
        query = {"version": version, "start": start, "end": end, "qs": ",".join(map(str, qs))}
        doc = self.stack.request("GET", "/quantiles?" + urlencode(query))
        return tuple(doc["quantiles"])


def wait_steady(
    read_status: Callable[[], Status],
    progress: Progress,
    versions: Sequence[Version],
    timeout_s: float,
) -> Status:
    """Wait until each service's tasks run and their health is decided. A crash loop
    fails at once; unhealthy targets are reported (they are visible in status) but do
    not hang the command the way an ECS deployment waiting on them would."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = read_status()
        pending: list[str] = []
        unhealthy: list[str] = []
        for v in versions:
            vs = status.versions.get(v)
            s, tg = (None, None) if vs is None else (vs.service, vs.target_group)
            if s is None or tg is None:
                continue
            if s.deployment_state == "crash-looping":
                raise OperationFailed(
                    f"service {s.name} is crash-looping: {s.message}",
                    hint="see `canary status` and the task logs in the state directory's tasks/",
                )
            if s.deployment_state == "COMPLETED":
                continue
            if s.running >= s.desired and not s.pending and not tg.initial and tg.unhealthy:
                unhealthy.append(
                    f"{v}: {tg.unhealthy} target(s) fail their health check; "
                    + ("they get no traffic" if tg.healthy else "the group fails open (as ALB)")
                )
                continue
            pending.append(f"{v} {tg.healthy}/{s.desired} healthy")
        if not pending:
            for line in unhealthy:
                progress.log(f"warning: {line}")
            return status
        progress.update("waiting for healthy tasks: " + ", ".join(pending))
        if time.monotonic() > deadline:
            raise OperationFailed(
                f"the services did not become healthy within {timeout_s:.0f} s",
                hint="see `canary status` and the task logs in the state directory's tasks/",
            )
        time.sleep(0.2)


def wait_fresh_healthy(
    read_tasks: Callable[[], list[dict[str, Any]]],
    read_services: Callable[[], dict[Version, ServiceStatus]],
    desired: dict[Version, int],
    replaced: set[str],
    progress: Progress,
    timeout_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait until each group has `desired` healthy tasks not among `replaced` (the
    tasks a restart replaces may still drain). A crash loop fails at once."""
    deadline = clock() + timeout_s
    while True:
        fresh: dict[str, int] = {v: 0 for v in desired}
        for task in read_tasks():
            version = task["version"]
            if version in fresh and task["task_id"] not in replaced:
                fresh[version] += task["state"] == "RUNNING" and task["health"] == "healthy"
        pending = [f"{v} {fresh[v]}/{n} healthy" for v, n in desired.items() if fresh[v] < n]
        if not pending:
            return
        for version, service in read_services().items():
            if version in desired and service.deployment_state == "crash-looping":
                raise OperationFailed(
                    f"service {service.name} is crash-looping: {service.message}",
                    hint="see `canary status` and the task logs in the state directory's tasks/",
                )
        progress.update("waiting for fresh healthy tasks: " + ", ".join(pending))
        if clock() > deadline:
            raise OperationFailed(
                f"the new {' and '.join(desired)} tasks did not become healthy within "
                f"{timeout_s:.0f} s ({', '.join(pending)})",
                hint="see `canary status` and the task logs in the state directory's tasks/",
            )
        sleep(0.1)


class LocalTarget:
    """The whole local stack: ALB-like balancer and ECS-like services in one daemon."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stack = LocalStack(settings)
        self.router: TrafficRouter = LocalRouter(self.stack)
        self.workload: Workload = LocalWorkload(self.stack, self.status)
        self.metrics: MetricsSource = LocalMetrics(self.stack)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalTarget:
        return cls(settings)

    @property
    def paths(self) -> StackPaths:
        return self.stack.paths

    def deploy(self, spec: ReleaseSpec, progress: Progress) -> None:
        """Start the daemon if needed (like `docker compose up -d`) and apply the spec; a
        running stack is updated in place and keeps its live weights."""
        for version in VERSIONS:
            parse_image(spec.image(version), role=f"{version} image")  # fail before any change
        control = self.stack.control
        started = self._ensure_daemon(spec, progress)
        progress.update("starting tasks")
        try:
            result = control.request("PUT", "/spec", spec_to_dict(spec))
        except Exception:
            if started and self.stack.stored_spec() is None:
                control.stop(forget=True)  # a failed first deploy leaves nothing running
            raise
        progress.log(f"Listener weights {Weights.from_dict(result['weights'])}")
        wait_steady(
            self.status, progress, VERSIONS, STEADY_TIMEOUT_S[self.settings.local.health_profile]
        )

    def _ensure_daemon(self, spec: ReleaseSpec, progress: Progress) -> bool:
        """Start the daemon unless it runs; True when this call started it."""
        control = self.stack.control
        if control.running():
            running = control.request("GET", "/status")
            listener_config = (running["health_check_path"], running["stickiness_seconds"])
            if listener_config == (spec.health_check_path, spec.stickiness_seconds):
                progress.log(f"Updating the running local stack (listener {running['url']})")
                return False
            # The balancer fixes both at start: restart it (tasks restart, state is kept)
            # on the same address, also when it was picked with port 0.
            progress.log("Restarting the local stack for the new health check / stickiness")
            control.stop(forget=False)
            address = urlsplit(running["url"])
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
        if not self.stack.control.running():
            return self._stopped_status()
        doc = self.stack.request("GET", "/status")
        spec = None if doc["spec"] is None else spec_from_dict(doc["spec"])
        stored = doc.get("stored_weights")
        listener = ListenerStatus(
            url=doc["url"],
            weights=_weights(doc["weights"]),
            stickiness_seconds=doc.get("stickiness_seconds"),
            configured_weights=None if stored is None else _weights(stored),
        )
        notes: list[str] = []
        versions: dict[Version, VersionStatus] = {}
        for v in GROUPS:
            if v not in doc["services"]:
                continue  # a daemon from before the baseline
            service = ServiceStatus(**doc["services"][v])
            groups = doc["target_groups"].get(v, {})
            tg = TargetGroupStatus(name=f"tg-{v}", **{k: int(n) for k, n in groups.items()})
            if v == "baseline" and not _in_use(service, tg, listener.weights.baseline):
                continue  # shown only during a rollout (tasks or weight)
            if tg.unhealthy and not tg.healthy:
                notes.append(
                    f"every {v} target is unhealthy: the balancer fails open and still "
                    "routes to them (as ALB does)"
                )
            versions[v] = VersionStatus(
                task_definition=None
                if spec is None
                else TaskDefinitionStatus(image=spec.image(v), container_port=spec.container_port),
                service=service,
                target_group=tg,
                traffic=TrafficStatus(**doc["traffic"][v]) if v in doc["traffic"] else None,
            )
        states = {s.service.deployment_state for s in versions.values() if s.service}
        stack_status = (
            "NOT_DEPLOYED"
            if spec is None
            else "DEGRADED"
            if "crash-looping" in states
            else "RUNNING"
            if states <= {"COMPLETED"}
            else "UPDATING"
        )
        notes.append(f"state {self.paths.state_dir} (daemon pid {doc['pid']})")
        return Status(
            self.name, self.settings.stack_name, stack_status, listener, versions, tuple(notes)
        )

    def _stopped_status(self) -> Status:
        spec = self.stack.stored_spec()
        if spec is None:
            raise OperationFailed(
                f"no local stack in {self.paths.state_dir}",
                hint="run `canary deploy` first (or pass the --state-dir it used)",
            )
        versions = {
            v: VersionStatus(
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
        return Status(self.name, self.settings.stack_name, "STOPPED", None, versions, (note,))

    def delete(self, progress: Progress, *, purge: bool = False) -> None:
        """Stop the daemon and every task. History (events, metrics) stays unless purge."""
        had_spec = self.stack.stored_spec() is not None
        progress.update("stopping the local stack")
        was_running = self.stack.control.stop(forget=True)
        if not was_running and had_spec:
            store = StateStore(self.paths.state_dir)
            try:
                store.clear_spec()
            finally:
                store.close()
        if not (was_running or had_spec or purge):
            raise OperationFailed(
                f"no local stack in {self.paths.state_dir}",
                hint="nothing to delete; pass the --state-dir it was deployed with",
            )
        if purge and self.paths.state_dir.exists():
            shutil.rmtree(self.paths.state_dir)
            progress.log(f"Removed {self.paths.state_dir}")


def _in_use(service: ServiceStatus, tg: TargetGroupStatus, weight: int) -> bool:
    """A group has tasks, targets or weight (the baseline outside a rollout has none)."""
    targets = tg.healthy + tg.unhealthy + tg.initial + tg.draining
    return bool(weight or service.desired or service.running or service.pending or targets)


def _weights(doc: dict[str, Any]) -> Weights:
    return Weights.from_dict(doc)
