"""`LocalWorkload`: the daemon's services as a `Workload`, and the waits for healthy tasks."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from canary_deploy.backend import (
    GROUPS,
    Progress,
    ReleaseSpec,
    Role,
    ServiceStatus,
    TargetGroupStatus,
)
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.local.stack import STEADY_TIMEOUT_S, LocalStack
from canary_deploy.local.store import spec_from_dict, spec_to_dict


class LocalWorkload:
    """The stable, canary and baseline services of task processes."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def describe_services(self) -> dict[Role, ServiceStatus]:
        doc = self.stack.request("GET", "/services")
        return {v: ServiceStatus(**doc[v]) for v in GROUPS if v in doc}

    def _spec(self) -> ReleaseSpec:
        doc = self.stack.request("GET", "/spec")
        if doc is None:
            raise OperationFailed("the local stack has no spec", hint="run `canary deploy`")
        return spec_from_dict(doc)

    def canary_image(self) -> str | None:
        """The canary service's command template (a local "image" has no digest to pin:
        the template is the whole of it); None when nothing is deployed."""
        doc = self.stack.request("GET", "/spec")
        return None if doc is None else spec_from_dict(doc).image_canary

    def promote(self, image: str, progress: Progress) -> None:
        """Stable's tasks replaced one by one by `image` (not whatever the canary runs
        by then), then wait until they are healthy."""
        spec = self._spec()
        if spec.image_stable != image:
            progress.log(f"Promoting: stable becomes {image}")
            self.stack.request("PUT", "/spec", spec_to_dict(replace(spec, image_stable=image)))
        self.wait_steady(("stable",), progress)

    def service_health(self) -> dict[Role, tuple[ServiceStatus, TargetGroupStatus]]:
        """Each group's service and its target group's health, as the daemon reports them;
        empty when the daemon does not run."""
        doc = self.stack.daemon_status()
        if doc is None:
            return {}
        groups = doc.target_groups
        return {v: (s, groups[v]) for v, s in doc.services.items() if v in groups}

    def wait_steady(self, roles: Sequence[Role], progress: Progress) -> None:
        """Wait until the `roles`' services are steady (see `wait_steady`)."""
        timeout = STEADY_TIMEOUT_S[self.stack.settings.local.health_profile]
        wait_steady(self.service_health, progress, roles, timeout)

    def scale(self, role: Role, desired_count: int) -> None:
        """One daemon call; returns before the new tasks are healthy. The baseline's count
        is the rollout's (PUT /baseline), here without restarting the canary's tasks."""
        if desired_count < 0:
            raise UsageError(f"desired count must be >= 0, got {desired_count}")
        if role == "baseline":
            body = {"desired_count": desired_count, "restart_canary": False}
            self.stack.request("PUT", "/baseline", body)
            return
        spec = self._spec()
        if role == "canary":
            spec = replace(spec, desired_count_canary=desired_count)
        else:
            spec = replace(spec, desired_count_stable=desired_count)
        self.stack.request("PUT", "/spec", spec_to_dict(spec))

    def scale_canary(self, desired_count: int) -> None:
        self.scale("canary", desired_count)

    def healthy_targets(self, roles: Collection[Role]) -> dict[Role, int]:
        """Targets the balancer's health checks report healthy, per group asked for."""
        groups = self.stack.request("GET", "/targets")
        return {v: sum(t["state"] == "healthy" for t in groups.get(v, [])) for v in roles}

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


def wait_steady(
    read_groups: Callable[[], Mapping[Role, tuple[ServiceStatus, TargetGroupStatus]]],
    progress: Progress,
    roles: Sequence[Role],
    timeout_s: float,
) -> None:
    """Wait until each service's tasks run and their health is decided. A crash loop
    fails at once; unhealthy targets are reported (they are visible in status) but do
    not hang the command the way an ECS deployment waiting on them would."""
    deadline = time.monotonic() + timeout_s
    while True:
        groups = read_groups()
        pending: list[str] = []
        unhealthy: list[str] = []
        for v in roles:
            if v not in groups:
                continue
            s, tg = groups[v]
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
            pending.append(_progress_of(v, tg.healthy, s.desired, tg.draining))
        if not pending:
            for line in unhealthy:
                progress.log(f"warning: {line}")
            return
        progress.update("waiting for healthy tasks: " + ", ".join(pending))
        if time.monotonic() > deadline:
            raise OperationFailed(
                f"the services did not become healthy within {timeout_s:.0f} s",
                hint="see `canary status` and the task logs in the state directory's tasks/",
            )
        time.sleep(0.2)


def wait_fresh_healthy(
    read_tasks: Callable[[], list[dict[str, Any]]],
    read_services: Callable[[], dict[Role, ServiceStatus]],
    desired: dict[Role, int],
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
            role = task["version"]
            if role in fresh and task["task_id"] not in replaced:
                fresh[role] += task["state"] == "RUNNING" and task["health"] == "healthy"
        pending = [f"{v} {fresh[v]}/{n} healthy" for v, n in desired.items() if fresh[v] < n]
        if not pending:
            return
        for role, service in read_services().items():
            if role in desired and service.deployment_state == "crash-looping":
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


def _progress_of(role: str, healthy: int, desired: int, draining: int) -> str:
    """E.g. "stable 1/2 healthy"; during a replacement the old tasks are said apart.

    >>> _progress_of("stable", 3, 2, 0)
    'stable 2/2 healthy, 1 old still serving'
    >>> _progress_of("stable", 2, 2, 1)
    'stable 2/2 healthy, 1 draining'
    >>> _progress_of("canary", 0, 1, 0)
    'canary 0/1 healthy'
    """
    parts = [f"{role} {min(healthy, desired)}/{desired} healthy"]
    if healthy > desired:
        parts.append(f"{healthy - desired} old still serving")
    if draining:
        parts.append(f"{draining} draining")
    return ", ".join(parts)
